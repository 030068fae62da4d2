# Installation (`cmake --install`) and the Debian package (`cpack -G DEB`, or the
# `package` target).
#
# What goes where (GNUInstallDirs, under CMAKE_INSTALL_PREFIX):
#   bin/ststest
#   share/man/man1/ststest.1.gz          the manual, docs/ststest.1
#   share/ststest/scenarios/*.yaml       the scenario library (`ststest run` with no PATH)
#   share/doc/ststest/                   README.md and docs/*.md
#
# The package's Depends: come from dpkg-shlibdeps (the runtime libraries the binary
# links with, and nothing to build or test with); ca-certificates is recommended,
# since `send` and `check` use the system trust store by default.

install(TARGETS ststest RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Debian installs manuals gzip-compressed (-n: no name or time stamp in the header,
# so that the package is reproducible).
set(_man_src ${CMAKE_SOURCE_DIR}/docs/ststest.1)
set(_man_gz ${CMAKE_BINARY_DIR}/ststest.1.gz)
add_custom_command(OUTPUT ${_man_gz}
  COMMAND gzip -9 -n -c ${_man_src} > ${_man_gz}
  DEPENDS ${_man_src}
  COMMENT "Compressing the manual ststest(1)")
add_custom_target(manpage ALL DEPENDS ${_man_gz})
install(FILES ${_man_gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

install(DIRECTORY ${CMAKE_SOURCE_DIR}/scenarios/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/ststest/scenarios
        FILES_MATCHING PATTERN "*.yaml" PATTERN "*.yml")
file(GLOB _docs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ststest)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION
  "ststest is a sending MTA that discovers a domain's MTA-STS policy and insists on\n"
  "STARTTLS with a valid certificate where the policy demands it, a fake world (DNS,\n"
  "HTTPS policy server, scripted MX servers, throw-away CA) and a runner that replays\n"
  "scenario files against it. The scenario library is installed with it.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "ststest developers <ststest@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS ca-certificates)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
include(CPack)
