# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt), so every path
# follows the prefix given at install time (--prefix P, or the configured
# CMAKE_INSTALL_PREFIX), and DESTDIR is prepended to where files go but not to
# the paths written into them (file(INSTALL) prepends DESTDIR itself;
# configure_file and EXISTS need it spelled out). RTMPLB_SRC is set by the caller.
#   prefix /usr:   /etc/rtmplb, /etc/logrotate.d, /usr/lib/systemd/system
#   prefix P:      P/etc/rtmplb, P/etc/logrotate.d, P/lib/systemd/system
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(etc "/etc")
else()
  set(etc "${prefix}/etc")
endif()
set(RTMPLB_BINDIR "${prefix}/bin")
set(RTMPLB_CONFDIR "${etc}/rtmplb")
set(RTMPLB_UNITDIR "${prefix}/lib/systemd/system")
set(dest "$ENV{DESTDIR}")

configure_file("${RTMPLB_SRC}/dist/rtmplb.service.in" "${dest}${RTMPLB_UNITDIR}/rtmplb.service" @ONLY)
message(STATUS "Installing: ${dest}${RTMPLB_UNITDIR}/rtmplb.service")
file(INSTALL "${RTMPLB_SRC}/dist/rtmplb.sysusers" DESTINATION "${prefix}/lib/sysusers.d"
     RENAME rtmplb.conf)
file(INSTALL "${RTMPLB_SRC}/dist/rtmplb.logrotate" DESTINATION "${etc}/logrotate.d"
     RENAME rtmplb)
# The default config: installed once; an operator's edits survive reinstalls.
if(EXISTS "${dest}${RTMPLB_CONFDIR}/rtmplb.yaml")
  message(STATUS "Kept: ${dest}${RTMPLB_CONFDIR}/rtmplb.yaml")
else()
  file(INSTALL "${RTMPLB_SRC}/dist/rtmplb.yaml" DESTINATION "${RTMPLB_CONFDIR}")
endif()
