#!/bin/sh
{{template "common" .}}
case "$1" in
  configure) if [ -n "$2" ]; then action=upgrade; else action=install; fi ;;
  abort-*) action=upgrade ;;
  1) action=install ;;
  [2-9]|[1-9][0-9]*) action=upgrade ;;
esac

# The data directory: the service's own; its group may look in (the
# control token), nobody else. What is in it already is kept as it is.
if [ ! -d "$data" ]; then
  mkdir -p "$data"
  chown "$user:$group" "$data"
  chmod 0750 "$data"
fi
{{- range .ExtraGroups}}

# Idle detection reads the input devices through their group.
if getent group {{.}} >/dev/null; then
  if have usermod; then usermod -a -G {{.}} "$user"; else addgroup "$user" {{.}} 2>/dev/null || true; fi
fi
{{- end}}
{{- if .PersonGroup}}

# The person installing the package may talk to the client (momonga status,
# attach) without sudo: they join its group.
person="${SUDO_USER:-}"
if [ -z "$person" ] && [ -n "${PKEXEC_UID:-}" ]; then person=$(getent passwd "$PKEXEC_UID" | cut -d: -f1); fi
if [ -n "$person" ] && [ "$person" != root ] && getent passwd "$person" >/dev/null; then
  if ! id -nG "$person" | tr ' ' '\n' | grep -qx "$group"; then
    if have usermod; then usermod -a -G "$group" "$person"; else addgroup "$person" "$group"; fi
    echo "{{.Name}}: added $person to the $group group: log in again, then \`momonga status\` works without sudo"
  fi
elif [ "$action" = install ]; then
  echo "{{.Name}}: to use momonga without sudo, join its group: sudo usermod -a -G $group \$USER (then log in again)"
fi
{{- end}}

if have systemctl; then
  if [ "$action" = install ]; then
    systemctl enable "$unit" >/dev/null 2>&1 || true
  fi
  if systemd_running; then
    systemctl daemon-reload || true
    if [ "$action" = install ]; then
      systemctl start "$unit" || true
    else
      systemctl try-restart "$unit" || true
    fi
  fi
fi
{{- if .FirstStart}}
if [ "$action" = install ]; then
  echo {{sh .FirstStart}}
fi
{{- end}}
exit 0
