"""Writes seed inputs for fuzz_json into a folder: a type-selector byte
(an index into fuzz_json.c's types[]; +128 for wire bytes) then JSON for
that type, covering each field kind and well-known type, so the fuzzer
starts from valid messages. Usage: make_json_seeds.py DIR"""
import os
import sys

SUBMIT, JOB, ENGINE_STATE, ARGUMENTS = 0, 1, 2, 3
SCALARS, REPEATED, MAPS, PRESENCE, WELL_KNOWN, RECURSIVE, VALUE = range(4, 11)

SEEDS = [
    (SUBMIT, '{"jobTypeId":3,"poolId":1,"subject":"s","config":{"configName":'
             '"c","module":"m","maxNPoints":10,"moduleParams":{"periods":[1,2],'
             '"w":{"x":null}}},"payload":"AAH/","meta":{"a":"1"},"priority":-5,'
             '"notBefore":"2024-05-06T07:08:09.123Z","responseOutputId":'
             '"18446744073709551615"}'),
    (JOB, '{"id":"j","state":"IN_PROGRESS","workerIdx":"1050625",'
          '"createdAt":"1970-01-01T00:00:00Z","progress":0.25}'),
    (ENGINE_STATE, '{"models":{"i":"t"},"actions":{"r":{"requestId":"r",'
                   '"result":[1,"a",true]}}}'),
    (ARGUMENTS, '{"args":[1,{"type":"data_access"}],"kwargs":{"k":"v"}}'),
    (SCALARS, '{"fDouble":1.5,"fFloat":"NaN","fInt32":-7,"fInt64":"-9",'
              '"fUint32":4294967295,"fUint64":18446744073709551615,'
              '"fSint32":-1,"fSint64":"-9223372036854775808","fFixed32":1,'
              '"fFixed64":"1","fSfixed32":-1,"fSfixed64":"-1","fBool":true,'
              '"fString":"h\\u00e9","fBytes":"-_8","fColor":"GREEN"}'),
    (REPEATED, '{"rInt32":[1,-2],"rInt64":["1",2],"rDouble":[0.5,"-Infinity"],'
               '"rString":["a"],"rBytes":["AQ=="],"rColor":["RED",9],'
               '"rMessage":[{"fInt32":1}],"rBool":[true],"rSint64":["-1"],'
               '"rFixed32":[7],"rFloat":[1e-45],"rUint64":["0"]}'),
    (MAPS, '{"stringString":{"b":"2","a":"1"},"int32Int64":{"-1":"5"},'
           '"boolString":{"true":"t"},"uint64Message":{"7":{}},'
           '"stringColor":{"x":"RED"},"sint32Bytes":{"-5":"AQI="},'
           '"stringValue":{"n":null},"fixed64Double":{"1":"Infinity"}}'),
    (PRESENCE, '{"otherInt32":0,"nothing":null,"plain":1,"customName":"x"}'),
    (PRESENCE, '{"other_string":"","nested":{"f_int32":1},"renamed":"y"}'),
    (WELL_KNOWN, '{"any":{"@type":"type.googleapis.com/google.protobuf.Duration",'
                 '"value":"1.5s"},"duration":"-0.5s","empty":{},'
                 '"mask":"a.bC,d","structField":{"a":[true,null]},'
                 '"value":{"k":1},"list":[[],{}],"time":'
                 '"2024-02-29T23:30:00.5+01:00","wDouble":0,"wFloat":1.5,'
                 '"wInt64":"-3","wUint64":"1","wInt32":0,"wUint32":4,'
                 '"wBool":false,"wString":"","wBytes":"AQ==","values":[null],'
                 '"nullValue":null,"anys":[{"@type":"type.googleapis.com/'
                 'jobhub.test.Scalars","fInt32":3}],"rWrapper":[1]}'),
    (WELL_KNOWN, '{"any":{"@type":"type.googleapis.com/google.protobuf.Any",'
                 '"value":{"@type":"type.googleapis.com/jobhub.v1.JobConfig",'
                 '"moduleParams":{}}}}'),
    (RECURSIVE, '{"child":{"child":{"depth":3}},"depth":1}'),
    (VALUE, '[1,"a",{"b":null},true,1e300]'),
]

# Wire bytes, for the other direction (from test_json's wire cases).
WIRE_SEEDS = [
    (REPEATED, "08 01 0a 02 02 03 08 04 12 02 05 06 10 07"),
    (PRESENCE, "2a 02 18 01 1a 01 78 2a 02 20 02 30 00"),
    (MAPS, "0a 06 0a 01 61 12 01 31 0a 06 0a 01 61 12 01 32 0a 00"),
    (SCALARS, "f8 06 01 fb 06 08 01 fc 06 18 ff ff ff ff ff ff ff ff ff 01"),
]


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    for i, (kind, text) in enumerate(SEEDS):
        with open(os.path.join(folder, "seed-json-%02d" % i), "wb") as f:
            f.write(bytes([kind]) + text.encode())
    for i, (kind, hexed) in enumerate(WIRE_SEEDS):
        with open(os.path.join(folder, "seed-wire-%02d" % i), "wb") as f:
            f.write(bytes([128 + kind]) + bytes.fromhex(hexed))


if __name__ == "__main__":
    main()
