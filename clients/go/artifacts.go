package runcore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	pb "github.com/runcore/runcore/clients/go/gen/runcorev1"
)

// chunkSize is the bytes per message when a file's content is streamed.
const chunkSize = 1 << 20

// ArtifactSpec is an artifact version to log (W&B's wandb.Artifact, built at once).
// Paths inside the artifact are '/'-separated and relative.
type ArtifactSpec struct {
	Name        string
	Type        string
	Description string
	Metadata    map[string]any
	// Aliases besides "latest", which every new version gets.
	Aliases []string
	// Files maps a path inside the artifact to a local file. A sidecar on this host
	// reads it itself; to a remote one its bytes are streamed.
	Files map[string]string
	// Dir adds every regular file under a local directory, keeping its layout.
	Dir string
	// Bytes maps a path inside the artifact to content, streamed with its SHA-256.
	Bytes map[string][]byte
	// References maps a path to a URI kept as a reference (file://, s3://, gs://,
	// http(s)://); only file:// ones are read (for their digest).
	References map[string]string
}

// Artifact is a logged (or used) artifact version.
type Artifact struct {
	Name        string
	Type        string
	Version     string
	Aliases     []string
	Description string
	Metadata    map[string]any
	// Digest is the store's hex SHA-256 over the sorted manifest.
	Digest    string
	Size      uint64
	FileCount uint64
	// LoggedBy and UsedBy are run paths (entity/project/id).
	LoggedBy []string
	UsedBy   []string
	// Existing: logging found a version with the same content.
	Existing bool

	run *Run
}

func artifactOf(a *pb.Artifact, r *Run) *Artifact {
	return &Artifact{
		Name: a.GetName(), Type: a.GetType(), Version: a.GetVersion(), Aliases: a.GetAliases(),
		Description: a.GetDescription(), Metadata: fromValueMap(a.GetMetadata()), Digest: a.GetDigest(),
		Size: a.GetSize(), FileCount: a.GetFileCount(), LoggedBy: a.GetLoggedBy(), UsedBy: a.GetUsedBy(), run: r,
	}
}

// isLocal reports whether a sidecar address shares this host's files.
func isLocal(address string) bool {
	if strings.HasPrefix(address, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(strings.TrimPrefix(address, "tcp://"))
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// fileRequests turns a spec's entries into AddArtifactFiles messages.
func (r *Run) fileRequests(draft string, spec ArtifactSpec) ([]*pb.AddArtifactFilesRequest, error) {
	files := map[string]string{}
	for k, v := range spec.Files {
		files[k] = v
	}
	if spec.Dir != "" {
		err := filepath.WalkDir(spec.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(spec.Dir, p)
			files[filepath.ToSlash(rel)] = p
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	local := isLocal(r.sc.address)
	var out []*pb.AddArtifactFilesRequest
	for _, path := range sortedKeys(files) {
		src, err := filepath.Abs(files[path])
		if err != nil {
			return nil, err
		}
		if local {
			out = append(out, &pb.AddArtifactFilesRequest{DraftId: draft, Item: &pb.AddArtifactFilesRequest_File{
				File: &pb.ArtifactFileSource{Path: path, Source: src}}})
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		out = append(out, chunks(draft, path, data)...)
	}
	for _, path := range sortedKeys(spec.Bytes) {
		out = append(out, chunks(draft, path, spec.Bytes[path])...)
	}
	for _, path := range sortedKeys(spec.References) {
		out = append(out, &pb.AddArtifactFilesRequest{DraftId: draft, Item: &pb.AddArtifactFilesRequest_Reference{
			Reference: &pb.ArtifactFile{Path: path, Ref: spec.References[path]}}})
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// chunks is content in pieces, its SHA-256 on the last.
func chunks(draft, path string, data []byte) []*pb.AddArtifactFilesRequest {
	sum := sha256.Sum256(data)
	var out []*pb.AddArtifactFilesRequest
	for off := 0; ; off += chunkSize {
		end := min(off+chunkSize, len(data))
		last := end == len(data)
		c := &pb.ArtifactChunk{Path: path, Data: data[off:end], Last: last}
		if last {
			c.Sha256 = hex.EncodeToString(sum[:])
		}
		out = append(out, &pb.AddArtifactFilesRequest{DraftId: draft, Item: &pb.AddArtifactFilesRequest_Chunk{Chunk: c}})
		if last {
			return out
		}
	}
}

// LogArtifact logs an artifact version as an output of the run (W&B's
// run.log_artifact): the existing version when the content is the same. A sidecar
// that restarts in the middle leaves no half version; the whole log is retried.
func (r *Run) LogArtifact(ctx context.Context, spec ArtifactSpec) (*Artifact, error) {
	const op = "LogArtifact"
	if spec.Name == "" || spec.Type == "" {
		return nil, invalid(op, r.id, "an artifact needs a Name and a Type")
	}
	meta, err := toValueMap(spec.Metadata, "metadata")
	if err != nil {
		return nil, invalid(op, r.id, "%v", err)
	}
	var done *pb.CommitArtifactResponse
	err = r.call(ctx, op, func(ctx context.Context) error {
		return r.logArtifact(ctx, spec, meta, &done)
	})
	if err != nil {
		return nil, err
	}
	a := artifactOf(done.GetArtifact(), r)
	a.Existing = done.GetExisting()
	return a, nil
}

// logArtifact is one attempt: create a draft, send the files, commit.
func (r *Run) logArtifact(ctx context.Context, spec ArtifactSpec, meta map[string]*pb.Value, done **pb.CommitArtifactResponse) error {
	created, err := r.sc.client.CreateArtifact(ctx, &pb.CreateArtifactRequest{
		RunId: r.id, Name: spec.Name, Type: spec.Type, Description: spec.Description,
		Metadata: meta, Aliases: spec.Aliases,
	})
	if err != nil {
		return err
	}
	reqs, err := r.fileRequests(created.GetDraftId(), spec)
	if err != nil {
		return invalid("LogArtifact", r.id, "%v", err)
	}
	stream, err := r.sc.client.AddArtifactFiles(ctx)
	if err != nil {
		return err
	}
	for _, req := range reqs {
		if err := stream.Send(req); err != nil {
			if errors.Is(err, io.EOF) {
				break // the sidecar ended the stream: CloseAndRecv says why
			}
			return err
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return err
	}
	*done, err = r.sc.client.CommitArtifact(ctx, &pb.CommitArtifactRequest{DraftId: created.GetDraftId()})
	return err
}

// UseArtifact declares a version an input of the run ("name:alias", "name:vN", or a
// registry path "model-registry/NAME:alias") and returns it (W&B's
// run.use_artifact). A missing artifact is an error with code NOT_FOUND.
func (r *Run) UseArtifact(ctx context.Context, name string) (*Artifact, error) {
	var resp *pb.UseArtifactResponse
	err := r.callWith(ctx, "UseArtifact", false, func(ctx context.Context) (err error) {
		resp, err = r.sc.client.UseArtifact(ctx, &pb.UseArtifactRequest{RunId: r.id, Name: name})
		return err
	})
	if err != nil {
		return nil, err
	}
	return artifactOf(resp.GetArtifact(), r), nil
}

// Download places the version's files under root, a directory on the sidecar's host
// (default ./artifacts/NAME:VERSION), as hard links to the store where possible
// (read-only: copy a file to edit it); it returns root. References other than
// file:// are not fetched: their URIs are returned in skipped.
func (a *Artifact) Download(ctx context.Context, root string) (dir string, skipped []string, err error) {
	if root == "" {
		root = filepath.Join("artifacts", a.Name+":"+a.Version)
	}
	if root, err = filepath.Abs(root); err != nil {
		return "", nil, err
	}
	r := a.run
	err = r.callWith(ctx, "Download", false, func(ctx context.Context) error {
		skipped = nil
		stream, err := r.sc.client.DownloadArtifact(ctx, &pb.DownloadArtifactRequest{
			Name: a.Name + ":" + a.Version, Root: root})
		if err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if m.GetSkippedRef() != "" {
				skipped = append(skipped, m.GetSkippedRef())
			}
		}
	})
	if err != nil {
		return "", nil, err
	}
	return root, skipped, nil
}

// String is NAME:VERSION.
func (a *Artifact) String() string { return fmt.Sprintf("%s:%s", a.Name, a.Version) }
