{{define "common"}}set -e
# {{.Name}}'s maintainer script, one for deb, rpm and apk: each passes
# its own arguments, read here into one action (install, upgrade, remove,
# purge). apk passes none: its upgrade scripts are this one made with
# another default.
user={{.User}}
group={{.User}}
data={{.DataDir}}
unit={{.Unit}}
action={{.Default}}
systemd_running() { [ -d /run/systemd/system ]; }
have() { command -v "$1" >/dev/null 2>&1; }
{{end}}
