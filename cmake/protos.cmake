# Code generation from .proto files, at build time into ${JOBHUB_GEN_DIR}.
#
# jobhub_protoc_c(OUT_VAR PROTO_PATH <dirs> PROTOS <files>)
#   protoc-c messages only (X.pb-c.c/.h); OUT_VAR gets the .c files.
# jobhub_generate(OUT_VAR PROTO_PATH <dirs> PROTOS <files> DESCRIPTOR_SET <sym>)
#   protoc-c messages, our plugin's X.rpc.c/.h (method tables, handler
#   tables, client stubs) and <sym>.c/.h, the embedded FileDescriptorSet of
#   the files and all their imports. Imports are compiled elsewhere (the
#   well-known types in jobhub_wkt).
# Generated sources are compiled without the project's warnings.
#
# protoc-c 1.4 writes its own service stubs with a member per method named
# after it, so a method called Register gives "void (*register)(...)", a C
# keyword; it has no option to skip those stubs, so the headers are mended:
# a keyword member gets a trailing underscore (the stubs are unused here).
set(_JOBHUB_MEND_KEYWORDS
  "s/\\(\\*(auto|break|case|char|const|continue|default|do|double|else|enum|extern|float|for|goto|if|inline|int|long|register|restrict|return|short|signed|sizeof|static|struct|switch|typedef|union|unsigned|void|volatile|while)\\)\\(/(*\\1_)(/")

# Finds each proto under the proto path; sets <out_var> to absolute paths.
function(_jobhub_locate_protos out_var)
  set(found)
  foreach(proto ${ARGN})
    set(location)
    foreach(dir ${_JOBHUB_PROTO_PATH})
      if(NOT location AND EXISTS ${dir}/${proto})
        set(location ${dir}/${proto})
      endif()
    endforeach()
    if(NOT location)
      message(FATAL_ERROR "${proto} is not under ${_JOBHUB_PROTO_PATH}")
    endif()
    list(APPEND found ${location})
  endforeach()
  set(${out_var} ${found} PARENT_SCOPE)
endfunction()

function(jobhub_protoc_c out_var)
  cmake_parse_arguments(ARG "" "" "PROTO_PATH;PROTOS" ${ARGN})
  set(_JOBHUB_PROTO_PATH ${ARG_PROTO_PATH})
  _jobhub_locate_protos(inputs ${ARG_PROTOS})
  set(includes)
  foreach(dir ${ARG_PROTO_PATH})
    list(APPEND includes -I${dir})
  endforeach()
  set(sources)
  set(outputs)
  set(headers)
  foreach(proto ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    list(APPEND sources ${JOBHUB_GEN_DIR}/${base}.pb-c.c)
    list(APPEND headers ${JOBHUB_GEN_DIR}/${base}.pb-c.h)
    list(APPEND outputs ${JOBHUB_GEN_DIR}/${base}.pb-c.c
                        ${JOBHUB_GEN_DIR}/${base}.pb-c.h)
  endforeach()
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${PROTOC_C} ${includes} --c_out=${JOBHUB_GEN_DIR} ${ARG_PROTOS}
    COMMAND sed -i -E ${_JOBHUB_MEND_KEYWORDS} ${headers}
    DEPENDS ${inputs}
    COMMENT "protoc-c ${ARG_PROTOS}"
    VERBATIM)
  set_source_files_properties(${sources} PROPERTIES GENERATED TRUE
                              COMPILE_OPTIONS "-w")
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()

function(jobhub_generate out_var)
  cmake_parse_arguments(ARG "" "DESCRIPTOR_SET" "PROTO_PATH;PROTOS" ${ARGN})
  if(NOT ARG_DESCRIPTOR_SET)
    message(FATAL_ERROR "jobhub_generate needs DESCRIPTOR_SET")
  endif()
  set(_JOBHUB_PROTO_PATH ${ARG_PROTO_PATH})
  _jobhub_locate_protos(inputs ${ARG_PROTOS})
  set(includes)
  foreach(dir ${ARG_PROTO_PATH} /usr/include)
    list(APPEND includes -I${dir})
  endforeach()
  set(sources ${JOBHUB_GEN_DIR}/${ARG_DESCRIPTOR_SET}.c)
  set(outputs ${JOBHUB_GEN_DIR}/${ARG_DESCRIPTOR_SET}.c
              ${JOBHUB_GEN_DIR}/${ARG_DESCRIPTOR_SET}.h)
  set(headers)
  foreach(proto ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" base ${proto})
    list(APPEND headers ${JOBHUB_GEN_DIR}/${base}.pb-c.h)
    foreach(kind pb-c rpc)
      list(APPEND sources ${JOBHUB_GEN_DIR}/${base}.${kind}.c)
      list(APPEND outputs ${JOBHUB_GEN_DIR}/${base}.${kind}.c
                          ${JOBHUB_GEN_DIR}/${base}.${kind}.h)
    endforeach()
  endforeach()
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${PROTOC_C} ${includes} --c_out=${JOBHUB_GEN_DIR} ${ARG_PROTOS}
    COMMAND sed -i -E ${_JOBHUB_MEND_KEYWORDS} ${headers}
    COMMAND ${PROTOC} ${includes}
            --plugin=protoc-gen-jobhub=$<TARGET_FILE:protoc-gen-jobhub>
            --jobhub_out=descriptor_set=${ARG_DESCRIPTOR_SET}:${JOBHUB_GEN_DIR}
            ${ARG_PROTOS}
    DEPENDS ${inputs} protoc-gen-jobhub
    COMMENT "protoc-gen-jobhub ${ARG_PROTOS}"
    VERBATIM)
  set_source_files_properties(${sources} PROPERTIES GENERATED TRUE
                              COMPILE_OPTIONS "-w")
  set(${out_var} ${sources} PARENT_SCOPE)
endfunction()
