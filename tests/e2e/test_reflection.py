"""End-to-end: server reflection (v1 and v1alpha) through python3-grpcio,
checked by building a descriptor pool from what the server returns."""
import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

import reflection_v1_pb2
import reflection_v1alpha_pb2

SERVICES = [
    "jobhub.test.Echo", "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "jobhub.v1.Jobs", "jobhub.v1.Workers", "jobhub.v1.Outputs",
    "jobhub.v1.Engine", "jobhub.v1.Series", "jobhub.v1.Hub",
]

VERSIONS = {"v1": reflection_v1_pb2, "v1alpha": reflection_v1alpha_pb2}


def ask(channel, version, **request):
    pb2 = VERSIONS[version]
    call = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=pb2.ServerReflectionResponse.FromString)
    return list(call(iter([pb2.ServerReflectionRequest(host="h", **request)]),
                     timeout=10))


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_list_services_names_every_service(channel, version):
    [response] = ask(channel, version, list_services="")
    names = [s.name for s in response.list_services_response.service]
    assert sorted(names) == sorted(SERVICES)
    assert response.valid_host == "h"
    assert response.original_request.list_services == ""


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
@pytest.mark.parametrize("service", SERVICES)
def test_file_containing_symbol_resolves_every_service(channel, version, service):
    [response] = ask(channel, version, file_containing_symbol=service)
    files = [descriptor_pb2.FileDescriptorProto.FromString(blob) for blob in
             response.file_descriptor_response.file_descriptor_proto]
    # Every dependency must be in the answer: a fresh pool accepts them all.
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in files}
    added = set()
    while pending:
        ready = [f for f in pending.values() if set(f.dependency) <= added]
        assert ready, "unresolvable dependencies: %s" % list(pending)
        for f in ready:
            pool.Add(f)
            added.add(f.name)
            del pending[f.name]
    found = pool.FindServiceByName(service)
    assert found.full_name == service
    for method in found.methods:  # every method's types resolve
        assert method.input_type.full_name and method.output_type.full_name


@pytest.mark.parametrize("symbol,file", [
    ("jobhub.v1.Jobs.Submit", "jobhub/v1/jobs.proto"),
    ("jobhub.v1.Job", "jobhub/v1/common.proto"),
    ("jobhub.v1.QUEUED", "jobhub/v1/common.proto"),
    ("jobhub.v1.Job.MetaEntry", "jobhub/v1/common.proto"),
    ("grpc.health.v1.HealthCheckResponse.ServingStatus",
     "grpc/health/v1/health.proto"),
    ("google.protobuf.Struct", "google/protobuf/struct.proto"),
])
def test_file_containing_symbol_of_nested_things(channel, symbol, file):
    [response] = ask(channel, "v1", file_containing_symbol=symbol)
    first = descriptor_pb2.FileDescriptorProto.FromString(
        response.file_descriptor_response.file_descriptor_proto[0])
    assert first.name == file


def test_file_by_filename_includes_dependencies(channel):
    [response] = ask(channel, "v1", file_by_filename="jobhub/v1/jobs.proto")
    names = [descriptor_pb2.FileDescriptorProto.FromString(b).name for b in
             response.file_descriptor_response.file_descriptor_proto]
    assert names[0] == "jobhub/v1/jobs.proto"
    for dependency in ["jobhub/v1/common.proto", "google/api/annotations.proto",
                       "google/api/http.proto", "google/protobuf/descriptor.proto",
                       "google/protobuf/timestamp.proto"]:
        assert dependency in names
    assert len(names) == len(set(names))


def test_http_annotation_extension_is_known(channel):
    [response] = ask(channel, "v1",
                     all_extension_numbers_of_type="google.protobuf.MethodOptions")
    assert 72295728 in response.all_extension_numbers_response.extension_number
    [response] = ask(channel, "v1", file_containing_extension=
                     reflection_v1_pb2.ExtensionRequest(
                         containing_type="google.protobuf.MethodOptions",
                         extension_number=72295728))
    first = descriptor_pb2.FileDescriptorProto.FromString(
        response.file_descriptor_response.file_descriptor_proto[0])
    assert first.name == "google/api/annotations.proto"


@pytest.mark.parametrize("request_kwargs", [
    {"file_containing_symbol": "no.such.Symbol"},
    {"file_by_filename": "no/such.proto"},
])
def test_unknown_symbol_or_file_is_not_found_error_response(channel, request_kwargs):
    [response] = ask(channel, "v1", **request_kwargs)
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert response.error_response.error_message


def test_several_requests_on_one_stream(channel):
    pb2 = reflection_v1_pb2
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=pb2.ServerReflectionResponse.FromString)
    requests = [pb2.ServerReflectionRequest(list_services=""),
                pb2.ServerReflectionRequest(file_containing_symbol="jobhub.v1.Hub"),
                pb2.ServerReflectionRequest()]
    responses = list(call(iter(requests), timeout=10))
    assert len(responses) == 3
    assert responses[0].HasField("list_services_response")
    assert responses[1].HasField("file_descriptor_response")
    assert responses[2].error_response.error_code == \
        grpc.StatusCode.INVALID_ARGUMENT.value[0]
