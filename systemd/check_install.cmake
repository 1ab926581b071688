# `cmake --install --component systemd` with two prefixes into a scratch DESTDIR: the unit lands
# in <prefix>/lib/systemd/system and its ExecStart names <prefix>/bin/activate and the policy.
# Run by ctest (systemd_units.install) with -DBUILD_DIR= -DWORK_DIR=.
foreach(prefix /usr /opt/activate)
  file(REMOVE_RECURSE ${WORK_DIR})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env DESTDIR=${WORK_DIR}
            ${CMAKE_COMMAND} --install ${BUILD_DIR} --component systemd --prefix ${prefix}
    RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake --install --component systemd --prefix ${prefix} failed: ${rc}")
  endif()
  set(unit ${WORK_DIR}${prefix}/lib/systemd/system/activate-mark-good.service)
  if(NOT EXISTS ${unit})
    message(FATAL_ERROR "not installed: ${unit}")
  endif()
  file(READ ${unit} text)
  foreach(want
      "\nExecStart=${prefix}/bin/activate mark-good --policy /etc/activate/update.yaml\n"
      "\nConditionPathExists=/etc/activate/update.yaml\n"
      "\nAfter=boot-complete.target\n" "\nRequires=boot-complete.target\n"
      "\nWantedBy=multi-user.target\n")
    string(FIND "${text}" "${want}" at)
    if(at EQUAL -1)
      string(STRIP "${want}" want)
      message(FATAL_ERROR "${unit} lacks the line: ${want}")
    endif()
  endforeach()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
