# `cmake --install --component systemd` with two prefixes into a scratch DESTDIR: each unit lands
# in <prefix>/lib/systemd/system, names <prefix>/bin/activate, and has the lines its README.md
# row explains (ordering, conditions). Run by ctest (systemd_units.install) with -DBUILD_DIR=
# -DWORK_DIR=.

# check_unit(<file> <line>...): the file exists, holds every line, and no @VARIABLE@ is left.
function(check_unit unit)
  if(NOT EXISTS ${unit})
    message(FATAL_ERROR "not installed: ${unit}")
  endif()
  file(READ ${unit} text)
  foreach(want ${ARGN})
    string(FIND "${text}" "\n${want}\n" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${unit} lacks the line: ${want}")
    endif()
  endforeach()
  string(FIND "${text}" "@" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "${unit} has an unsubstituted @VARIABLE@")
  endif()
endfunction()

foreach(prefix /usr /opt/activate)
  file(REMOVE_RECURSE ${WORK_DIR})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env DESTDIR=${WORK_DIR}
            ${CMAKE_COMMAND} --install ${BUILD_DIR} --component systemd --prefix ${prefix}
    RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cmake --install --component systemd --prefix ${prefix} failed: ${rc}")
  endif()
  set(units ${WORK_DIR}${prefix}/lib/systemd/system)
  # WantedBy=multi-user.target and After=multi-user.target together need
  # DefaultDependencies=no, or the target's implicit After= makes an ordering cycle.
  check_unit(${units}/activate-assess.service
    "ExecStart=${prefix}/bin/activate assess --policy /etc/activate/update.yaml"
    "ConditionPathExists=/etc/activate/update.yaml"
    "Type=oneshot" "TimeoutStartSec=infinity" "DefaultDependencies=no"
    "After=multi-user.target" "Before=boot-complete.target"
    "WantedBy=multi-user.target" "RequiredBy=boot-complete.target")
  # Socket activation: a root-only socket at the path `activate request` uses by default, and a
  # service that takes it (no --socket) with both shipped update policies.
  check_unit(${units}/activate.socket
    "ListenStream=/run/activate/activate.sock" "SocketMode=0600" "DirectoryMode=0700"
    "WantedBy=sockets.target")
  check_unit(${units}/activate.service
    "ExecStart=${prefix}/bin/activate serve --policy /etc/activate/update-efi.yaml --policy /etc/activate/update-kexec.yaml"
    "Requires=activate.socket")
  if(EXISTS ${units}/activate-mark-good.service)
    message(FATAL_ERROR "activate-mark-good.service is installed: assess marks good at boot")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
