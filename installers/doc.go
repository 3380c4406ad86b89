// Package installers will hold what puts the volunteer client on people's
// machines as a service: nfpm package configuration (deb, rpm), the systemd
// unit, the launchd plist, the MSI source and the code that installs and
// removes the service (DESIGN §2). It has no code yet.
package installers
