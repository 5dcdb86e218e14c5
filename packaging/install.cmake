# packaging/install.cmake - what `cmake --install` puts where (GNUInstallDirs),
# and the Debian package built from the same build tree with CPack (`cpack -G
# DEB`, see docs/packaging.md). Included by the top-level CMakeLists.txt.
#
# The unit names the binary and the configuration by absolute path, and /etc
# depends on the prefix (/usr -> /etc, /opt/X -> /etc/opt/X, else PREFIX/etc,
# the GNUInstallDirs rule). Both are worked out at install time by
# install_paths.cmake, with the prefix the install runs with: so a tree
# configured for /usr/local installs there, and cpack on the same tree makes a
# package for /usr.

install(TARGETS redpulse RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})

# man pages: generated from docs/*.md (tests/check_man.py keeps them in sync),
# compressed here as Debian wants them (-n: no name or timestamp inside)
set(RP_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)
set(rp_gz "")
foreach(src packaging/redpulse.8 packaging/redpulse.json.5 packaging/changelog)
  get_filename_component(name ${src} NAME)
  set(out ${RP_PKG_OUT}/${name}.gz)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${RP_PKG_OUT}
    COMMAND sh -c "gzip -9nc '${CMAKE_SOURCE_DIR}/${src}' > '${out}'"
    DEPENDS ${CMAKE_SOURCE_DIR}/${src} VERBATIM)
  list(APPEND rp_gz ${out})
endforeach()
add_custom_target(redpulse_packaging_files ALL DEPENDS ${rp_gz})

install(FILES ${RP_PKG_OUT}/redpulse.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${RP_PKG_OUT}/redpulse.json.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
# dashboards, alert and recording rules, example prometheus.yml: as they are
install(DIRECTORY dashboards/ DESTINATION ${CMAKE_INSTALL_DATADIR}/redpulse/dashboards)
if(EXISTS ${CMAKE_SOURCE_DIR}/rules)
  install(DIRECTORY rules/ DESTINATION ${CMAKE_INSTALL_DATADIR}/redpulse/rules)
endif()
install(FILES packaging/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${RP_PKG_OUT}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME changelog.Debian.gz)
# the unit and the default configuration (a conffile in the package)
install(CODE "set(REDPULSE_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
set(REDPULSE_STAGE_DIR \"${RP_PKG_OUT}/stage\")
set(REDPULSE_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")")
install(SCRIPT packaging/install_paths.cmake)

# ---- Debian package -------------------------------------------------------
# Runtime dependencies come from dpkg-shlibdeps on the binary, nothing else
# (ExecReload= runs redpulse --reload, no /bin/kill).
# tests/packaging/test_package.py checks them against ldd of the installed binary.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME redpulse)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "redpulse maintainers <maintainers@users.noreply.r-seed-ead4af8c.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "monitoring agent for Redis under heavy write load")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "redpulse polls INFO on many Redis instances over one persistent connection
each, derives the figures a write-heavy Redis needs (write ops/sec,
fragmentation, AOF and bgsave health, fork cost) and serves them as
Prometheus metrics and JSON from an embedded HTTP server. Its metric names
are redis_exporter's, so existing dashboards and alert rules keep working.")
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server, prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
  ${CMAKE_SOURCE_DIR}/packaging/debian/prerm ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# absolute destinations (/etc, /lib/systemd) land in the package root; the
# install runs with prefix /usr whatever the build tree was configured with
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
  OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/deb)
include(CPack)
