# Helpers shared by dcres's components.

# Where the guest firmware lives (Debian's qemu-system-data and seabios).
set(DCRES_FIRMWARE_DIRS "/usr/share/qemu:/usr/share/seabios")

# Applies dcres's warning and sanitizer flags to a host-side target (library,
# tool or test). Guest code is freestanding and does not use this.
function(dcres_host_target target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(DCRES_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${DCRES_SANITIZE}
                           -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${DCRES_SANITIZE})
  endif()
endfunction()

# Adds a ctest test that skips (exit 77) when it lacks root, namespaces or
# userfaultfd, and sees the source and build trees, the firmware and any
# extra NAME=VALUE pairs given after ENV in its environment.
function(dcres_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "COMMAND;LABELS;ENV" ${ARGN})
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT ${T_TIMEOUT}
    LABELS "${T_LABELS}"
    ENVIRONMENT "DCRES_SOURCE_DIR=${PROJECT_SOURCE_DIR};DCRES_BUILD_DIR=${PROJECT_BINARY_DIR};DCRES_FIRMWARE_DIRS=${DCRES_FIRMWARE_DIRS};${T_ENV}")
endfunction()
