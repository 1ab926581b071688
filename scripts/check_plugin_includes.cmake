# ctest plugin_includes.<ident>: a plugin's include path reaches its own headers and no other
# plugin's (README "Every plugin folder has one layout"). With the include directories the
# plugin is compiled with, one of its own headers must compile and every other plugin's header
# must be "not found"; a cross-plugin include would tie two plugins together behind the ABI.
# Usage: cmake -DCXX=<compiler> -DINCLUDES=<dir;dir…> -DOWN=<own/header.hpp>
#              -DOTHERS=<other/header.hpp;…> -DWORK=<scratch dir> -P check_plugin_includes.cmake
set(flags -std=c++20 -fsyntax-only -x c++)
foreach(dir ${INCLUDES})
  list(APPEND flags -I${dir})
endforeach()
file(MAKE_DIRECTORY ${WORK})

function(compile header result_var output_var)
  string(MAKE_C_IDENTIFIER "${header}" stem)
  set(source ${WORK}/${stem}.cpp)
  file(WRITE ${source} "#include <${header}>\n")
  execute_process(COMMAND ${CXX} ${flags} ${source}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(${result_var} ${rc} PARENT_SCOPE)
  set(${output_var} "${out}" PARENT_SCOPE)
endfunction()

compile(${OWN} rc out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the plugin's own header <${OWN}> does not compile with its include "
    "path (${INCLUDES}):\n${out}")
endif()
foreach(other ${OTHERS})
  compile(${other} rc out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "<${other}>, another plugin's header, compiles with this plugin's "
      "include path (${INCLUDES}): plugin include directories must be private")
  endif()
  if(NOT out MATCHES "No such file or directory|file not found")
    message(FATAL_ERROR "<${other}> failed for another reason than not being found:\n${out}")
  endif()
endforeach()
message(STATUS "<${OWN}> compiles; not found: ${OTHERS}")
