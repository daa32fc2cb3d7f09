package lfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MediaType is the Git LFS API's JSON media type.
const MediaType = "application/vnd.git-lfs+json"

// MaxBatchObjects bounds the objects of one batch request (git-lfs sends
// 100 at a time).
const MaxBatchObjects = 1000

// MaxBatchBody bounds a batch request body in bytes.
const MaxBatchBody = 1 << 20

// BatchRequest is a Git LFS batch API request (docs/api/batch.md in git-lfs):
// {"operation": "download", "transfers": ["basic"], "ref": {"name": …},
// "objects": [{"oid": …, "size": …}], "hash_algo": "sha256"}.
type BatchRequest struct {
	Operation string    `json:"operation"`
	Transfers []string  `json:"transfers,omitempty"`
	Objects   []Pointer `json:"objects"`
	HashAlgo  string    `json:"hash_algo,omitempty"`
}

// BadRequestError is a batch request that is not valid JSON or not a batch
// request at all (HTTP 400).
type BadRequestError struct{ msg string }

func (e *BadRequestError) Error() string { return e.msg }

// ValidationError is a well-formed request with invalid objects (HTTP 422,
// as the batch API specifies).
type ValidationError struct{ msg string }

func (e *ValidationError) Error() string { return e.msg }

// ParseBatchRequest decodes and validates a batch request body: one JSON
// object, no trailing data, a known operation, at most MaxBatchObjects
// objects each with a sha256 oid and a non-negative size, "basic" among the
// transfers when they are listed, and hash_algo sha256 when given. Errors are
// *BadRequestError or *ValidationError.
func ParseBatchRequest(body []byte) (*BatchRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw struct {
		Operation string   `json:"operation"`
		Transfers []string `json:"transfers"`
		Objects   []struct {
			OID  string           `json:"oid"`
			Size *json.RawMessage `json:"size"`
		} `json:"objects"`
		HashAlgo string `json:"hash_algo"`
	}
	if err := dec.Decode(&raw); err != nil {
		return nil, &BadRequestError{"batch request: not a JSON object: " + short(err.Error())}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &BadRequestError{"batch request: trailing data after the JSON object"}
	}
	switch raw.Operation {
	case "download", "upload":
	case "":
		return nil, &BadRequestError{"batch request: operation missing"}
	default:
		return nil, &BadRequestError{fmt.Sprintf("batch request: unknown operation %q", short(raw.Operation))}
	}
	if raw.HashAlgo != "" && raw.HashAlgo != "sha256" {
		return nil, &ValidationError{fmt.Sprintf("batch request: hash_algo %q not supported (sha256 only)", short(raw.HashAlgo))}
	}
	if len(raw.Transfers) > 0 {
		basic := false
		for _, t := range raw.Transfers {
			basic = basic || t == "basic"
		}
		if !basic {
			return nil, &ValidationError{"batch request: only the basic transfer is served"}
		}
	}
	if len(raw.Objects) > MaxBatchObjects {
		return nil, &ValidationError{fmt.Sprintf("batch request: %d objects, at most %d per request", len(raw.Objects), MaxBatchObjects)}
	}
	req := &BatchRequest{Operation: raw.Operation, Transfers: raw.Transfers, HashAlgo: raw.HashAlgo,
		Objects: make([]Pointer, 0, len(raw.Objects))}
	for i, o := range raw.Objects {
		if !IsOID(o.OID) {
			return nil, &ValidationError{fmt.Sprintf("batch request: object %d: oid %q is not a sha256 (64 lowercase hex digits)", i, short(o.OID))}
		}
		if o.Size == nil {
			return nil, &ValidationError{fmt.Sprintf("batch request: object %d: size missing", i)}
		}
		n, err := parseSize(string(*o.Size))
		if err != nil {
			return nil, &ValidationError{fmt.Sprintf("batch request: object %d: size: %v", i, err)}
		}
		req.Objects = append(req.Objects, Pointer{OID: o.OID, Size: n})
	}
	return req, nil
}

// BatchResponse is the batch API's answer.
type BatchResponse struct {
	Transfer string        `json:"transfer"`
	Objects  []BatchObject `json:"objects"`
	HashAlgo string        `json:"hash_algo"`
}

// BatchObject is one object of a BatchResponse: actions when it can be
// downloaded, an error otherwise.
type BatchObject struct {
	OID           string             `json:"oid"`
	Size          int64              `json:"size"`
	Authenticated bool               `json:"authenticated,omitempty"`
	Actions       map[string]*Action `json:"actions,omitempty"`
	Error         *ObjectError       `json:"error,omitempty"`
}

// Action is where and how to transfer an object.
type Action struct {
	Href   string            `json:"href"`
	Header map[string]string `json:"header,omitempty"`
}

// ObjectError is a per-object error (code as an HTTP status).
type ObjectError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}
