#!/bin/sh
{{template "common" .}}
case "$1" in
  install) action=install ;;
  upgrade) action=upgrade ;;
  1) action=install ;;
  [2-9]|[1-9][0-9]*) action=upgrade ;;
esac

# The service runs as a system user of its own. A person's account of that
# name is never taken over: the install stops here, having changed nothing.
min_uid=$(awk '$1 == "SYS_UID_MAX" { print $2 + 1 }' /etc/login.defs 2>/dev/null || true)
[ -n "$min_uid" ] || min_uid=$(awk '$1 == "UID_MIN" { print $2 }' /etc/login.defs 2>/dev/null || true)
[ -n "$min_uid" ] || min_uid=1000
if entry=$(getent passwd "$user"); then
  uid=$(echo "$entry" | cut -d: -f3)
  if [ "$uid" -ge "$min_uid" ] && [ "$uid" -ne 65534 ]; then
    echo "{{.Name}}: a user named $user already exists and is a person's account (uid $uid), not a system user." >&2
    echo "{{.Name}}: the service will not run as it. Rename that account (usermod -l NEWNAME $user) or remove it, then install again. Nothing was changed." >&2
    exit 1
  fi
fi

if ! getent group "$group" >/dev/null; then
  if have groupadd; then groupadd --system "$group"; else addgroup -S "$group"; fi
fi
if ! getent passwd "$user" >/dev/null; then
  nologin=/usr/sbin/nologin
  [ -x "$nologin" ] || nologin=/sbin/nologin
  if have useradd; then
    useradd --system --gid "$group" --home-dir "$data" --no-create-home --shell "$nologin" --comment "{{.Name}} service" "$user"
  else
    adduser -S -D -H -h "$data" -s "$nologin" -G "$group" -g "{{.Name}} service" "$user"
  fi
fi
exit 0
