# Runs at install time (see install.cmake): installs the systemd unit with the
# binary's and the configuration's paths for the prefix the install runs
# with, and the default configuration. file(INSTALL) honours DESTDIR.
set(prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" prefix "${prefix}")
if(prefix STREQUAL "" OR prefix STREQUAL "/usr")
  set(etc /etc)
  # Debian 12 keeps packaged units in /lib/systemd/system
  set(unitdir /lib/systemd/system)
elseif(prefix MATCHES "^/opt/")
  set(etc /etc${prefix})
  set(unitdir ${prefix}/lib/systemd/system)
else()
  set(etc ${prefix}/etc)
  set(unitdir ${prefix}/lib/systemd/system)
endif()
if(IS_ABSOLUTE "${REDPULSE_SBINDIR}")
  set(sbin "${REDPULSE_SBINDIR}")
else()
  set(sbin "${prefix}/${REDPULSE_SBINDIR}")
endif()

file(READ "${REDPULSE_SOURCE_DIR}/packaging/redpulse.service" unit)
string(REPLACE "/usr/sbin/redpulse" "${sbin}/redpulse" unit "${unit}")
string(REPLACE "/etc/redpulse/" "${etc}/redpulse/" unit "${unit}")
file(MAKE_DIRECTORY "${REDPULSE_STAGE_DIR}")
file(WRITE "${REDPULSE_STAGE_DIR}/redpulse.service" "${unit}")

file(INSTALL DESTINATION "${unitdir}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${REDPULSE_STAGE_DIR}/redpulse.service")
# an operator's own configuration is never overwritten: the shipped default
# then goes beside it as redpulse.json.default
set(conf "${REDPULSE_SOURCE_DIR}/packaging/redpulse.json")
if(EXISTS "$ENV{DESTDIR}${etc}/redpulse/redpulse.json")
  file(READ "$ENV{DESTDIR}${etc}/redpulse/redpulse.json" old)
  file(READ "${conf}" new)
  if(NOT old STREQUAL new)
    configure_file("${conf}" "${REDPULSE_STAGE_DIR}/redpulse.json.default" COPYONLY)
    set(conf "${REDPULSE_STAGE_DIR}/redpulse.json.default")
    message(STATUS "Keeping the existing ${etc}/redpulse/redpulse.json")
  endif()
endif()
file(INSTALL DESTINATION "${etc}/redpulse" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${conf}")
