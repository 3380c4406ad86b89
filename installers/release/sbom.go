package release

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// The software bill of materials is an SPDX 2.3 document in JSON: each
// binary of the release (with its SHA-256) and every Go module linked into
// it, read back from the binary's build information, so that it lists
// what was really built in, not what go.mod allows.
type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string         `json:"name"`
	SPDXID           string         `json:"SPDXID"`
	VersionInfo      string         `json:"versionInfo,omitempty"`
	DownloadLocation string         `json:"downloadLocation"`
	FilesAnalyzed    bool           `json:"filesAnalyzed"`
	PackageFileName  string         `json:"packageFileName,omitempty"`
	Checksums        []spdxChecksum `json:"checksums,omitempty"`
	ExternalRefs     []spdxRef      `json:"externalRefs,omitempty"`
	Comment          string         `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var spdxUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func spdxID(parts ...string) string {
	return "SPDXRef-" + strings.Trim(spdxUnsafe.ReplaceAllString(strings.Join(parts, "-"), "-"), "-")
}

// sbom writes momonga_VERSION.spdx.json for the binaries built.
func (b *builder) sbom(commit string) (string, error) {
	doc := spdxDoc{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              "momonga " + b.version,
		DocumentNamespace: "urn:uuid:" + strings.ToLower(guid("sbom", b.version, commit)),
		CreationInfo:      spdxCreation{Created: b.time.UTC().Format(time.RFC3339), Creators: []string{"Tool: momonga-release"}},
	}
	modules := map[string]spdxPackage{}
	for _, bin := range b.built {
		info, err := buildinfo.ReadFile(bin.Path)
		if err != nil {
			return "", fmt.Errorf("build information of %s: %w", bin.Path, err)
		}
		sum, err := fileSHA256(bin.Path)
		if err != nil {
			return "", err
		}
		id := spdxID("binary", bin.Platform.OS, bin.Platform.Arch, bin.Name)
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: bin.Name, SPDXID: id, VersionInfo: b.version, DownloadLocation: "NOASSERTION",
			PackageFileName: bin.Platform.OS + "_" + bin.Platform.Arch + "/" + bin.Name,
			Checksums:       []spdxChecksum{{"SHA256", sum}},
			Comment:         fmt.Sprintf("%s for %s, built by %s from commit %s", info.Path, bin.Platform, info.GoVersion, commit),
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", id})
		deps := append([]*linkedModule{{Path: "golang.org/toolchain", Version: info.GoVersion}}, toModules(info)...)
		for _, m := range deps {
			mid := spdxID("module", m.Path, m.Version)
			if _, ok := modules[mid]; !ok {
				p := spdxPackage{Name: m.Path, SPDXID: mid, VersionInfo: m.Version, DownloadLocation: "NOASSERTION"}
				if m.Path != "golang.org/toolchain" {
					p.ExternalRefs = []spdxRef{{"PACKAGE-MANAGER", "purl", "pkg:golang/" + m.Path + "@" + m.Version}}
				}
				if m.Sum != "" {
					p.Comment = "go.sum " + m.Sum
				}
				modules[mid] = p
			}
			doc.Relationships = append(doc.Relationships, spdxRelationship{id, "CONTAINS", mid})
		}
	}
	for _, p := range modules {
		doc.Packages = append(doc.Packages, p)
	}
	sort.Slice(doc.Packages, func(i, j int) bool { return doc.Packages[i].SPDXID < doc.Packages[j].SPDXID })
	sort.Slice(doc.Relationships, func(i, j int) bool {
		a, c := doc.Relationships[i], doc.Relationships[j]
		return a.Element+" "+a.Related < c.Element+" "+c.Related
	})
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	name := "momonga_" + b.version + ".spdx.json"
	return name, os.WriteFile(filepath.Join(b.cfg.Out, name), append(body, '\n'), 0o644)
}

// linkedModule is a module linked into a binary.
type linkedModule struct{ Path, Version, Sum string }

// toModules lists the modules of a binary: its own (at the commit built)
// and its dependencies, as replaced.
func toModules(info *buildinfo.BuildInfo) []*linkedModule {
	version := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && (version == "" || version == "(devel)") {
			version = s.Value
		}
	}
	out := []*linkedModule{{Path: info.Main.Path, Version: version}}
	for _, d := range info.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		out = append(out, &linkedModule{Path: d.Path, Version: d.Version, Sum: d.Sum})
	}
	return out
}
