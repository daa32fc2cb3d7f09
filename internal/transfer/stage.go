package transfer

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ballast-dev/ballast/internal/atomicfile"
)

// stage holds the bytes of one blob received so far, so an interrupted
// download continues where it stopped, even after a restart. On disk it is
// <staging>/sha256-<hex>/{data,state}: data holds the bytes, state records how
// many of them are hashed and durable, with the marshalled sha256 state so a
// resume does not re-read the prefix to hash it; bytes past that state
// are hashed from disk at open, so every byte received counts. Without a staging directory
// the stage lives only for one attempt.
type stage struct {
	dir      string // "" when not persistent
	d        v1.Descriptor
	f        *os.File
	off      int64     // bytes of data received, hashed, and (at the last checkpoint) durable
	h        hash.Hash // sha256 over data[0:off]
	complete bool      // off == size and the digest matched
	sinceCk  int64     // bytes since the last checkpoint
	lastCk   time.Time // when the last checkpoint was taken
	rehashed int64     // bytes past the saved state hashed from disk at open
}

// stageState is the state file; it is written atomically after data is
// synced, so it never claims bytes the data file may not hold.
type stageState struct {
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
	Offset   int64  `json:"offset"`
	Hash     []byte `json:"hash"` // sha256 BinaryMarshaler state
	Complete bool   `json:"complete,omitempty"`
}

// A checkpoint (three fsyncs) is taken once checkpointEvery bytes arrived
// and checkpointGap passed since the last one: a crash then costs at most
// 2 MiB or one second of transfer, whichever is more, and a fast link is
// not slowed by fsyncs every few milliseconds. A failed attempt always
// checkpoints, so a dropped link loses nothing.
const (
	checkpointEvery = 2 << 20
	checkpointGap   = time.Second
)

func openStage(root string, d v1.Descriptor) (*stage, error) {
	st := &stage{d: d, h: sha256.New()}
	if root == "" {
		return st, nil
	}
	st.dir = filepath.Join(root, d.Digest.Algorithm+"-"+d.Digest.Hex)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	f, err := openStageData(st.dir)
	if err != nil {
		// Not a stage this code wrote (a symlink, a directory or a
		// special file where a plain file belongs): never read, truncate
		// or write through it, and do not let it wedge the blob either.
		// Drop it (RemoveAll unlinks a symlink, not what it points to)
		// and start afresh.
		if rerr := os.RemoveAll(st.dir); rerr != nil {
			return nil, fmt.Errorf("staging: %w (removing it: %w)", err, rerr)
		}
		if f, err = openStageData(st.dir); err != nil {
			return nil, fmt.Errorf("staging: %w", err)
		}
	}
	st.f = f
	// A state that does not add up is not trusted: hash from byte 0.
	if err := st.restore(); err != nil {
		st.off, st.complete, st.h = 0, false, sha256.New()
	}
	// Bytes past the saved hash state were received but not yet
	// checkpointed (a crash, or a cut between checkpoints): hash them from
	// disk rather than fetch them again. Never past the blob's size. A
	// torn tail (zeros or garbage after a power loss) is caught by the
	// digest check at the end, which drops the stage and starts over.
	if err := st.rehashTail(); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging: %w", err)
	}
	if err := f.Truncate(st.off); err != nil {
		f.Close()
		return nil, fmt.Errorf("staging: %w", err)
	}
	return st, nil
}

// openStageData opens (creating them) the stage directory dir and its data
// file, refusing anything but a real directory holding a plain file:
// nothing planted there may make the stage read or write a file elsewhere.
func openStageData(dir string) (*os.File, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if fi, err := os.Lstat(dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory (%s)", dir, fi.Mode().Type())
	}
	name := filepath.Join(dir, "data")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !plainFile(fi) {
		err = fmt.Errorf("%s: not a plain file (%s)", name, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// plainFile reports whether fi is a regular file. (A hard link cannot
// be planted to a file the planter does not own where the kernel protects
// hard links, and link counts are not reliable on every file system.)
func plainFile(fi fs.FileInfo) bool { return fi.Mode().IsRegular() }

// readStateFile reads the small state file without following a symlink or
// blocking on a special file planted in its place.
func readStateFile(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !plainFile(fi) {
		return nil, fmt.Errorf("%s: not a plain file", name)
	}
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// rehashTail extends off over the bytes the data file holds past it, up to
// the blob's size, hashing them from disk.
func (st *stage) rehashTail() error {
	if st.complete {
		return nil
	}
	fi, err := st.f.Stat()
	if err != nil {
		return err
	}
	end := min(fi.Size(), st.d.Size)
	if end <= st.off {
		return nil
	}
	n, err := io.Copy(st.h, io.NewSectionReader(st.f, st.off, end-st.off))
	st.off += n
	st.rehashed = n
	if err != nil {
		return err
	}
	return nil
}

func (st *stage) restore() error {
	raw, err := readStateFile(filepath.Join(st.dir, "state"))
	if err != nil {
		return err
	}
	var s stageState
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.Digest != st.d.Digest.String() || s.Size != st.d.Size || s.Offset < 0 || s.Offset > s.Size {
		return fmt.Errorf("state does not match blob")
	}
	fi, err := st.f.Stat()
	if err != nil || fi.Size() < s.Offset {
		return fmt.Errorf("data shorter than state")
	}
	if s.Complete && fi.Size() != s.Size {
		return fmt.Errorf("complete state, data of %d bytes", fi.Size())
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.Hash); err != nil {
		return err
	}
	if s.Complete {
		if s.Offset != s.Size || hex.EncodeToString(h.Sum(nil)) != st.d.Digest.Hex {
			return fmt.Errorf("complete state with wrong digest")
		}
	}
	st.off, st.h, st.complete = s.Offset, h, s.Complete
	return nil
}

// write appends p (the next bytes of the blob) to the stage.
func (st *stage) write(p []byte) error {
	if st.f != nil {
		if _, err := st.f.WriteAt(p, st.off); err != nil {
			return Permanent(fmt.Errorf("staging write: %w", err))
		}
	}
	st.h.Write(p)
	st.off += int64(len(p))
	st.sinceCk += int64(len(p))
	if st.sinceCk >= checkpointEvery && time.Since(st.lastCk) >= checkpointGap {
		return st.checkpoint()
	}
	return nil
}

// finish checks the digest once every byte arrived.
func (st *stage) finish() error {
	if got := hex.EncodeToString(st.h.Sum(nil)); got != st.d.Digest.Hex {
		st.reset()
		return fmt.Errorf("blob %s: received bytes hash to sha256:%s: %w", st.d.Digest, got, ErrDigestMismatch)
	}
	st.complete = true
	// No checkpoint here: the target is receiving these very bytes now and
	// the stage goes once it commits. Syncing the whole blob to disk first
	// would make every copy pay a disk flush for a crash in that instant,
	// which the last checkpoint (at most a second old) covers anyway. A
	// failed attempt still checkpoints, complete state included.
	return nil
}

// checkpoint makes data[0:off] durable and records it.
func (st *stage) checkpoint() error {
	st.sinceCk, st.lastCk = 0, time.Now()
	if st.f == nil {
		return nil
	}
	if err := st.f.Sync(); err != nil {
		return fmt.Errorf("staging sync: %w", err)
	}
	hs, err := st.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(stageState{Digest: st.d.Digest.String(), Size: st.d.Size, Offset: st.off, Hash: hs, Complete: st.complete})
	return atomicfile.WriteFile(filepath.Join(st.dir, "state"), raw, 0o600)
}

// reset drops everything received (after a digest mismatch).
func (st *stage) reset() {
	st.off, st.complete, st.h, st.sinceCk, st.rehashed = 0, false, sha256.New(), 0, 0
	if st.f != nil {
		_ = st.f.Truncate(0)
		_ = os.Remove(filepath.Join(st.dir, "state"))
	}
}

// prefix reads the staged bytes again (to re-send them to a target whose
// upload restarted).
func (st *stage) prefix() io.Reader {
	if st.f == nil || st.off == 0 {
		return nil
	}
	return io.NewSectionReader(st.f, 0, st.off)
}

func (st *stage) close() {
	if st.f != nil {
		st.f.Close()
	}
}

// remove deletes the stage once every target has the blob.
func (st *stage) remove() {
	st.close()
	if st.dir != "" {
		_ = os.RemoveAll(st.dir)
	}
}

// PruneStaging removes partial blobs in the staging directory dir that have
// not been touched for olderThan (abandoned: their bundle is gone or no
// longer wanted). Call it only while no Copy uses dir.
func PruneStaging(dir string, olderThan time.Duration) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-olderThan)
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "sha256-") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(filepath.Join(p, "data"))
		if err != nil || fi.ModTime().Before(cutoff) {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}
