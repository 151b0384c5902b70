// Command verifier checks the portal's audit trail as a transparency log, from outside the operator: it
// fetches the log's verifier key and latest checkpoint (a C2SP signed note), an RFC 6962 inclusion proof of
// one event and a consistency proof from an older checkpoint the caller kept, and checks them with
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog. With -witness-key it also requires a valid
// cosignature of that witness (c2sp.org/tlog-cosignature, cosignature/v1) on the checkpoint, checked by the
// same note.Open call. It exits non-zero on any failure.
//
//	verifier -url http://127.0.0.1:8000 -token TOKEN [-index 0] [-old-note kept.note] [-note other.note]
//	         [-key KEY] [-witness-key WITNESS_KEY] [-tamper-leaf] [-truncate]
//
// -note and -key replace what the server serves (to check a note kept earlier, or under a key obtained out of
// band); -tamper-leaf flips a bit of the event before hashing it and -truncate asks for proofs in a tree one
// leaf shorter than the checkpoint's and holds them against the checkpoint's root: both must be refused, as
// must a latest checkpoint smaller than a kept one (CI checks all three).
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

type client struct {
	base  string
	token string
	http  *http.Client
}

func (c *client) get(path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(c.base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// cosignatureVerifier checks c2sp.org/tlog-cosignature cosignature/v1 signatures (verifier keys of type
// 0x04: a timestamp, then Ed25519 over "cosignature/v1\ntime <t>\n" and the note's text). Debian's
// golang.org/x/mod/sumdb/note knows only type 0x01, but note.Open accepts any note.Verifier.
type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func newCosignatureVerifier(vkey string) (*cosignatureVerifier, error) {
	name, rest, ok := strings.Cut(vkey, "+")
	hexHash, encoded, ok2 := strings.Cut(rest, "+")
	if !ok || !ok2 || name == "" {
		return nil, errors.New("a witness key is <name>+<key hash>+<base64 key>")
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x04 {
		return nil, errors.New("the witness key is not a cosignature/v1 Ed25519 key")
	}
	wanted, err := hex.DecodeString(hexHash)
	digest := sha256.Sum256(append([]byte(name+"\n"), raw...))
	if err != nil || len(wanted) != 4 || !bytes.Equal(wanted, digest[:4]) {
		return nil, errors.New("the witness key's hash does not match its key")
	}
	return &cosignatureVerifier{name: name, hash: binary.BigEndian.Uint32(wanted), key: raw[1:]}, nil
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	timestamp := binary.BigEndian.Uint64(sig[:8])
	if timestamp >= 1<<63 {
		return false
	}
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", timestamp)), msg...)
	return ed25519.Verify(v.key, signed, sig[8:])
}

// openCheckpoint verifies a note's signature under the log's key (and, if given, each witness's
// cosignature, all of which must be present) and parses its tlog-checkpoint body.
func openCheckpoint(msg []byte, verifier note.Verifier, witnesses ...note.Verifier) (checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(append([]note.Verifier{verifier}, witnesses...)...))
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint note: %w", err)
	}
	for _, want := range append([]note.Verifier{verifier}, witnesses...) {
		signed := false
		for _, sig := range n.Sigs {
			signed = signed || (sig.Name == want.Name() && sig.Hash == want.KeyHash())
		}
		if !signed {
			return checkpoint{}, fmt.Errorf("checkpoint note: no valid signature of %s", want.Name())
		}
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return checkpoint{}, errors.New("checkpoint body: want origin, size and root lines")
	}
	if lines[0] != verifier.Name() {
		return checkpoint{}, fmt.Errorf("checkpoint origin %q is not the log %q", lines[0], verifier.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 1 || strconv.FormatInt(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("checkpoint size %q is not a positive decimal", lines[1])
	}
	root, err := decodeHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint root: %w", err)
	}
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

func decodeHash(value string) (tlog.Hash, error) {
	var h tlog.Hash
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(raw) != tlog.HashSize {
		return h, fmt.Errorf("%q is not the base64 of 32 bytes", value)
	}
	copy(h[:], raw)
	return h, nil
}

func decodeHashes(values []string) ([]tlog.Hash, error) {
	hashes := make([]tlog.Hash, 0, len(values))
	for _, value := range values {
		h, err := decodeHash(value)
		if err != nil {
			return nil, err
		}
		hashes = append(hashes, h)
	}
	return hashes, nil
}

func run() error {
	base := flag.String("url", "http://127.0.0.1:8000", "the portal's address")
	token := flag.String("token", os.Getenv("PORTAL_TOKEN"), "a bearer token of a regulator or auditor")
	index := flag.Int64("index", 0, "the leaf index (chain position - 1) whose inclusion to check")
	oldNote := flag.String("old-note", "", "a checkpoint note kept earlier: check the log only grew since")
	noteFile := flag.String("note", "", "check this checkpoint note instead of the server's latest")
	keyFlag := flag.String("key", "", "trust this verifier key instead of the one the server publishes")
	witnessKey := flag.String("witness-key", "", "require a cosignature of this witness (its verifier key)")
	tamperLeaf := flag.Bool("tamper-leaf", false, "flip a bit of the event before hashing it (must fail)")
	truncate := flag.Bool("truncate", false, "use proofs of a tree one leaf shorter than the checkpoint (must fail)")
	flag.Parse()
	if *token == "" {
		return errors.New("no token: pass -token or set PORTAL_TOKEN")
	}
	c := &client{base: *base, token: *token, http: &http.Client{Timeout: 30 * time.Second}}

	vkey := *keyFlag
	if vkey == "" {
		body, err := c.get("/api/v1/audit/log/key")
		if err != nil {
			return err
		}
		vkey = strings.TrimSpace(string(body))
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}

	var msg []byte
	if *noteFile != "" {
		msg, err = os.ReadFile(*noteFile)
	} else {
		msg, err = c.get("/api/v1/audit/log/checkpoint")
	}
	if err != nil {
		return err
	}
	var witnesses []note.Verifier
	if *witnessKey != "" {
		w, err := newCosignatureVerifier(strings.TrimSpace(*witnessKey))
		if err != nil {
			return fmt.Errorf("witness key: %w", err)
		}
		witnesses = append(witnesses, w)
	}
	latest, err := openCheckpoint(msg, verifier, witnesses...)
	if err != nil {
		return err
	}
	fmt.Printf("checkpoint: %s size %d root %s: signature OK\n", latest.origin, latest.size,
		base64.StdEncoding.EncodeToString(latest.root[:]))
	for _, w := range witnesses {
		fmt.Printf("checkpoint: cosigned by witness %s: OK\n", w.Name())
	}
	size := latest.size
	if *truncate {
		size--
	}

	// Inclusion of one event in the checkpoint's tree.
	body, err := c.get(fmt.Sprintf("/api/v1/audit/log/inclusion/?index=%d&size=%d", *index, size))
	if err != nil {
		return err
	}
	var inclusion struct {
		Index  int64    `json:"index"`
		Size   int64    `json:"size"`
		Leaf   string   `json:"leaf"`
		Hashes []string `json:"hashes"`
	}
	if err := json.Unmarshal(body, &inclusion); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	if inclusion.Index != *index || inclusion.Size != size {
		return fmt.Errorf("inclusion proof is for leaf %d of %d, not %d of %d",
			inclusion.Index, inclusion.Size, *index, size)
	}
	leaf, err := base64.StdEncoding.DecodeString(inclusion.Leaf)
	if err != nil {
		return fmt.Errorf("inclusion proof leaf: %w", err)
	}
	if *tamperLeaf && len(leaf) > 0 {
		leaf[len(leaf)/2] ^= 0x01
	}
	proof, err := decodeHashes(inclusion.Hashes)
	if err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	if err := tlog.CheckRecord(tlog.RecordProof(proof), size, latest.root, *index, tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("inclusion of leaf %d in the tree of size %d: %w", *index, size, err)
	}
	fmt.Printf("inclusion: leaf %d in tree of size %d: OK\n", *index, size)

	// Consistency with a checkpoint kept earlier.
	if *oldNote != "" {
		kept, err := os.ReadFile(*oldNote)
		if err != nil {
			return err
		}
		old, err := openCheckpoint(kept, verifier)
		if err != nil {
			return fmt.Errorf("kept %w", err)
		}
		if old.size > latest.size {
			return fmt.Errorf("the log shrank: a kept checkpoint has size %d, the latest %d", old.size, latest.size)
		}
		body, err := c.get(fmt.Sprintf("/api/v1/audit/log/consistency/?old=%d&new=%d", old.size, size))
		if err != nil {
			return err
		}
		var consistency struct {
			Old    int64    `json:"old"`
			New    int64    `json:"new"`
			Hashes []string `json:"hashes"`
		}
		if err := json.Unmarshal(body, &consistency); err != nil {
			return fmt.Errorf("consistency proof: %w", err)
		}
		if consistency.Old != old.size || consistency.New != size {
			return errors.New("consistency proof is for other sizes")
		}
		proof, err := decodeHashes(consistency.Hashes)
		if err != nil {
			return fmt.Errorf("consistency proof: %w", err)
		}
		if err := tlog.CheckTree(tlog.TreeProof(proof), size, latest.root, old.size, old.root); err != nil {
			return fmt.Errorf("consistency from size %d to %d: %w", old.size, size, err)
		}
		fmt.Printf("consistency: size %d to %d: OK\n", old.size, size)
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}
