package screensaver

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"time"

	"github.com/momonga-project/momonga/client/control"
)

// Scene is what a frame shows.
type Scene struct {
	Running  bool // a client answered
	Status   control.Status
	Tasks    []control.Task
	Projects []control.Project
	// Pictures are the apps' pictures of the running tasks that have one,
	// by task id.
	Pictures map[string]image.Image
}

// Source gives the scene to show.
type Source interface {
	Scene(ctx context.Context) Scene
}

// ControlSource reads the scene from the client of a data directory, found
// anew at each look, so that a client started after the screensaver shows
// up, and one that stops shows as not running.
type ControlSource struct {
	DataDir string
}

// askTimeout bounds one look at the client.
const askTimeout = 2 * time.Second

// Scene asks the client for its status, tasks, projects and pictures.
func (s ControlSource) Scene(ctx context.Context) Scene {
	c, err := control.Dial(s.DataDir)
	if err != nil {
		return Scene{}
	}
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	var sc Scene
	if sc.Status, err = c.Status(ctx); err != nil {
		return Scene{}
	}
	sc.Running = true
	sc.Tasks, _ = c.Tasks(ctx)
	sc.Projects, _ = c.Projects(ctx)
	for _, t := range sc.Tasks {
		if !t.Picture || t.State != "running" {
			continue
		}
		b, err := c.Picture(ctx, t.ID)
		if err != nil {
			continue
		}
		if img, err := png.Decode(bytes.NewReader(b)); err == nil {
			if sc.Pictures == nil {
				sc.Pictures = map[string]image.Image{}
			}
			sc.Pictures[t.ID] = img
		}
	}
	return sc
}
