# ctest plugin_exports.<name>: a plugin shared object must export exactly its entry point
# (plugin_api.hpp). Anything else in its dynamic symbol table could bind to, or be bound by,
# another plugin or the engine behind the ABI version check.
# Usage: cmake -DNM=<nm> -DPLUGIN=<file.so> -P check_plugin_exports.cmake
execute_process(COMMAND ${NM} -D --defined-only ${PLUGIN}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D --defined-only ${PLUGIN} failed: ${err}")
endif()
string(REGEX REPLACE "\n$" "" out "${out}")
string(REPLACE "\n" ";" lines "${out}")
set(found_entry FALSE)
set(unexpected "")
foreach(line ${lines})
  # "<address> <type> <name>"
  string(REGEX REPLACE "^[0-9a-fA-F]* *[A-Za-z] +" "" symbol "${line}")
  if(symbol STREQUAL "activate_plugin_v1")
    set(found_entry TRUE)
  elseif(NOT symbol MATCHES "^(_init|_fini)$")
    list(APPEND unexpected "${symbol}")
  endif()
endforeach()
if(NOT found_entry)
  message(FATAL_ERROR "${PLUGIN} does not export activate_plugin_v1")
endif()
list(LENGTH unexpected n)
if(n GREATER 0)
  list(JOIN unexpected "\n  " shown)
  message(FATAL_ERROR "${PLUGIN} exports ${n} symbol(s) besides activate_plugin_v1:\n  ${shown}")
endif()
message(STATUS "${PLUGIN}: exports only activate_plugin_v1")
