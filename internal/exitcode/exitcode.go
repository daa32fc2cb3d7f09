// Package exitcode classifies errors into the process exit codes of the
// command-line contract: 0 ok, 1 the check or operation failed, 2 bad usage
// or bad input.
package exitcode

import "errors"

// Codes of the command-line contract.
const (
	OK         = 0
	Failed     = 1
	BadInput   = 2
	defaultErr = Failed
)

// Error carries an exit code with the error that caused it.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Invalid marks err as bad usage or bad input (exit code 2).
// It returns nil for a nil error.
func Invalid(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: BadInput, Err: err}
}

// Fail marks err as a failed check or operation (exit code 1).
// It returns nil for a nil error.
func Fail(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: Failed, Err: err}
}

// Code returns the exit code for err: 0 for nil, the code of the outermost
// *Error in its chain, or 1.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return defaultErr
}

// IsInvalid reports whether err was marked as bad input.
func IsInvalid(err error) bool { return Code(err) == BadInput }
