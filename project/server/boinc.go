package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/boinc"
)

// BOINC is the BOINC side of a serving process (project/boinc): stock
// BOINC clients attach to the project over HTTP on Listen.
type BOINC struct {
	Listen string // host:port; "" for none
	// URL is the project's master URL as BOINC volunteers are given it;
	// default http://Listen/.
	URL string
	// Dir holds the code-signing public key (the key pair is made here if
	// neither half is there; the private half, which signs the apps' files
	// when they are added, may then be moved offline), the secret,
	// the staged uploads and, unless AppsDir says otherwise, the runners
	// (boinc.RunnerFile) in DIR/boinc-apps; without that directory they
	// are taken from PackagedBOINCApps.
	Dir     string
	AppsDir string
	// AllowAccountCreation lets BOINC's attach wizard make accounts.
	AllowAccountCreation bool
}

// natsGateway carries the BOINC side's requests to the gateway over the
// server's own connection, as a volunteer's would come.
type natsGateway struct{ nc *nats.Conn }

func (g natsGateway) Request(ctx context.Context, subject string, body []byte) ([]byte, error) {
	msg, err := g.nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return nil, err
	}
	return msg.Data, nil
}

// serveBOINC starts the BOINC side, if configured.
func (s *Server) serveBOINC(uploads *blobs.Uploads) error {
	b := s.cfg.BOINC
	if b.Listen == "" {
		return nil
	}
	if s.cfg.Members == 0 {
		return errors.New("the BOINC side needs a member of the scheduler in this process")
	}
	if b.Dir == "" {
		return errors.New("the BOINC side needs a data directory for its keys and uploads")
	}
	privPath, pubPath := filepath.Join(b.Dir, boinc.CodeSignPrivateFile), filepath.Join(b.Dir, boinc.CodeSignPublicFile)
	if !exists(privPath) && !exists(pubPath) {
		if err := boinc.InitCodeSigning(b.Dir); err != nil {
			return err
		}
		s.cfg.Logger.Info("made the BOINC code-signing key", "path", privPath)
	}
	key, err := boinc.ReadCodeSigningPublicKey(pubPath)
	if err != nil {
		return err
	}
	secret, err := boinc.LoadOrCreateSecret(b.Dir)
	if err != nil {
		return err
	}
	appsDir := boincAppsDir(b, PackagedBOINCApps)
	runners, err := boinc.LoadRunners(appsDir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", b.Listen)
	if err != nil {
		return fmt.Errorf("BOINC listener: %w", err)
	}
	url := b.URL
	if url == "" {
		url = "http://" + ln.Addr().String() + "/"
	}
	side, err := boinc.New(boinc.Config{
		URL: url, ProjectName: s.cfg.Sched.Project, Gateway: natsGateway{s.nc}, Directory: s.reads(),
		Blobs: s.store, Uploads: uploads, CodeSignKey: key, Runners: runners, Secret: secret,
		UploadDir: filepath.Join(b.Dir, "boinc-uploads"), RPCInterval: s.cfg.Sched.Beat,
		AllowAccountCreation: b.AllowAccountCreation, Logger: s.cfg.Logger.With("part", "boinc"),
	})
	if err != nil {
		ln.Close()
		return err
	}
	s.boincURL = url
	s.boincHTTP = &http.Server{Handler: side, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.boincHTTP.Serve(ln) }()
	return nil
}

// PackagedBOINCApps is where the momonga-project package installs the
// runners (installers.BOINCAppsDir).
const PackagedBOINCApps = "/usr/lib/momonga-project/boinc-apps"

// BOINCAppsDir is where the runners of a project whose data directory is
// data are, appsDir unless it is "" (boincAppsDir): `momonga-project app
// add` signs the ones the server serves.
func BOINCAppsDir(data, appsDir string) string {
	if data == "" && appsDir == "" {
		return PackagedBOINCApps
	}
	return boincAppsDir(BOINC{Dir: data, AppsDir: appsDir}, PackagedBOINCApps)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// boincAppsDir is where the runners are: the directory named, else
// DIR/boinc-apps, else, when that does not exist, the package's.
func boincAppsDir(b BOINC, packaged string) string {
	if b.AppsDir != "" {
		return b.AppsDir
	}
	dir := filepath.Join(b.Dir, "boinc-apps")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return packaged
	}
	return dir
}

// BOINCURL is the master URL BOINC clients attach to, or "" when the BOINC
// side is off.
func (s *Server) BOINCURL() string { return s.boincURL }

func (s *Server) closeBOINC() {
	if s.boincHTTP != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.boincHTTP.Shutdown(ctx)
	}
}
