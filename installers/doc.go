// Package installers is what puts momonga on people's machines (DESIGN
// §2): the contents of the Linux packages (Packages: binaries, systemd
// units, maintainer scripts), the service definitions `momonga service
// install` writes for a person without a package (a systemd user unit, a
// launchd agent), the macOS launchd plist and the MSI's WiX source. It holds
// text and lists only; installers/release builds them into packages with
// nfpm, and `go run ./installers/build` is the release build.
package installers
