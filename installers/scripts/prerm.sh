#!/bin/sh
{{template "common" .}}
case "$1" in
  remove|deconfigure) action=remove ;;
  upgrade|failed-upgrade) action=upgrade ;;
  0) action=remove ;;
  [1-9]*) action=upgrade ;;
esac

# An upgrade restarts the service once the new files are in (postinst);
# only a removal stops it here.
if [ "$action" = remove ] && have systemctl; then
  if systemd_running; then systemctl stop "$unit" || true; fi
  systemctl disable "$unit" >/dev/null 2>&1 || true
fi
exit 0
