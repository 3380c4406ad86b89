#!/bin/sh
{{template "common" .}}
case "$1" in
  remove|abort-install|disappear) action=remove ;;
  purge) action=purge ;;
  upgrade|failed-upgrade|abort-upgrade) action=upgrade ;;
  0) action=remove ;;
  [1-9]*) action=upgrade ;;
esac

if have systemctl && systemd_running; then
  systemctl daemon-reload || true
fi

# Removing keeps the data (the host's identity, its attachments, finished
# results): installing again goes on from it. Purging deletes it, and the
# user and group made for the service.
if [ "$action" = purge ]; then
  rm -rf "$data"
  if getent passwd "$user" >/dev/null; then
    if have userdel; then userdel "$user" || true; else deluser "$user" 2>/dev/null || true; fi
  fi
  if getent group "$group" >/dev/null; then
    if have groupdel; then groupdel "$group" || true; else delgroup "$group" 2>/dev/null || true; fi
  fi
fi
exit 0
