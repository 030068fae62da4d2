# Test registration helpers: one cmocka executable per tests/unit/test_<module>.c,
# labelled "unit"; the pytest suite under tests/integration, labelled "integration".

function(ststest_add_unit_test name source)
  add_executable(${name} ${source})
  target_compile_options(${name} PRIVATE ${STSTEST_WARN})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE sts_runner sts_sender sts_world sts_common PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "STSTEST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# pytest must run under Debian's Python (python3-pytest, python3-yaml, python3-dnspython),
# never a pyenv interpreter that happens to be first on PATH.
function(ststest_add_pytest)
  find_program(STSTEST_DEBIAN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT STSTEST_DEBIAN_PYTHON)
    message(FATAL_ERROR "Debian's /usr/bin/python3 not found: run scripts/setup.sh")
  endif()
  execute_process(COMMAND ${STSTEST_DEBIAN_PYTHON} -c "import pytest, yaml, dns.resolver"
                  RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${STSTEST_DEBIAN_PYTHON} lacks pytest/yaml/dnspython: run scripts/setup.sh")
  endif()
  add_test(NAME integration
           COMMAND ${STSTEST_DEBIAN_PYTHON} -m pytest -ra -q -p no:cacheprovider
                   ${CMAKE_SOURCE_DIR}/tests/integration)
  set_tests_properties(integration PROPERTIES LABELS integration TIMEOUT 1800
    ENVIRONMENT "STSTEST_BIN=$<TARGET_FILE:ststest>;STSTEST_SOURCE_DIR=${CMAKE_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1")
endfunction()
