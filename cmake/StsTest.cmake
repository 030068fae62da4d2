# Test registration helpers: one cmocka executable per tests/unit/test_<module>.c,
# labelled "unit"; the pytest suites under tests/integration and tests/hostile (what
# hostile DNS, HTTPS and SMTP peers and a hostile file system do to the sender),
# labelled "integration" and "hostile".

function(ststest_add_unit_test name source)
  add_executable(${name} ${source})
  target_compile_options(${name} PRIVATE ${STSTEST_WARN})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE sts_runner sts_sender sts_world sts_common PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120
    ENVIRONMENT "STSTEST_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()

# pytest must run under Debian's Python (python3-pytest, python3-yaml, python3-dnspython,
# python3-cryptography: the hostile suite mints its certificate chains), never a pyenv
# interpreter that happens to be first on PATH. The real-world deployment
# (tests/integration/test_realworld.py: dnsmasq, nginx and Postfix as a postmaster runs
# them) is a ctest test of its own, "realworld" (labels integration and realworld), left
# out of "integration"; it needs nginx and dnsmasq as well.
function(ststest_add_pytest)
  find_program(STSTEST_DEBIAN_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  set(_missing "")
  if(NOT STSTEST_DEBIAN_PYTHON)
    set(_missing "Debian's /usr/bin/python3 (python3)")
  else()
    execute_process(COMMAND ${STSTEST_DEBIAN_PYTHON} -c "import pytest, yaml, dns.resolver, cryptography.x509"
                    RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
    if(NOT _rc EQUAL 0)
      set(_missing "pytest, PyYAML, dnspython or cryptography for /usr/bin/python3 (python3-pytest python3-yaml python3-dnspython python3-cryptography)")
    endif()
  endif()
  set(_realworld ${CMAKE_SOURCE_DIR}/tests/integration/test_realworld.py)
  set(_env "STSTEST_BIN=$<TARGET_FILE:ststest>;STSTEST_SOURCE_DIR=${CMAKE_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1")
  foreach(_suite integration hostile)
    if(_missing)
      ststest_add_missing_test(${_suite} "${_missing}")
      continue()
    endif()
    set(_ignore "")
    if(_suite STREQUAL "integration")
      set(_ignore --ignore=${_realworld})
    endif()
    add_test(NAME ${_suite}
             COMMAND ${STSTEST_DEBIAN_PYTHON} -m pytest -ra -q -p no:cacheprovider ${_ignore}
                     ${CMAKE_SOURCE_DIR}/tests/${_suite})
    set_tests_properties(${_suite} PROPERTIES LABELS ${_suite} TIMEOUT 1800
      ENVIRONMENT "${_env}")
  endforeach()
  find_program(STSTEST_NGINX nginx PATHS /usr/sbin /sbin)
  find_program(STSTEST_DNSMASQ dnsmasq PATHS /usr/sbin /sbin)
  if(NOT _missing AND (NOT STSTEST_NGINX OR NOT STSTEST_DNSMASQ))
    set(_missing "nginx and dnsmasq (nginx dnsmasq-base)")
  endif()
  if(_missing)
    ststest_add_missing_test(realworld "${_missing}")
    return()
  endif()
  add_test(NAME realworld
           COMMAND ${STSTEST_DEBIAN_PYTHON} -m pytest -ra -q -p no:cacheprovider ${_realworld})
  set_tests_properties(realworld PROPERTIES LABELS "integration;realworld" TIMEOUT 600
    ENVIRONMENT "${_env}")
endfunction()

# A test suite whose tools are missing: the build goes on (README line (1) needs no
# test tools), and one test in its place fails, naming what is missing and the script
# that installs it, so that `ctest` can never pass without running the suite.
function(ststest_add_missing_test suite what)
  message(STATUS "ststest: ${suite} tests need ${what}: scripts/setup-tests.sh installs it")
  add_test(NAME ${suite}_tests_not_runnable
           COMMAND sh -c "echo 'the ${suite} tests need ${what}, which is not installed: run scripts/setup-tests.sh, then cmake again' >&2; exit 1")
  set_tests_properties(${suite}_tests_not_runnable PROPERTIES LABELS ${suite})
endfunction()

# shellcheck over every shell script of the project (scripts/lint-shell.sh finds them
# by their #! line), labelled "lint".
function(ststest_add_shellcheck)
  find_program(STSTEST_SHELLCHECK shellcheck)
  if(NOT STSTEST_SHELLCHECK)
    ststest_add_missing_test(shellcheck "shellcheck")
    return()
  endif()
  add_test(NAME shellcheck COMMAND sh ${CMAKE_SOURCE_DIR}/scripts/lint-shell.sh ${CMAKE_SOURCE_DIR})
  set_tests_properties(shellcheck PROPERTIES LABELS lint TIMEOUT 120)
endfunction()
