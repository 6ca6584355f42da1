package query

import "fmt"

// CodeInvalidFilter is the error code of every validation error.
const CodeInvalidFilter = "invalid_filter"

// Error is a filter that failed validation (CONTRACT §3.2 rule 7). The API
// answers it with HTTP 400.
type Error struct {
	// Code is always CodeInvalidFilter.
	Code string `json:"code"`
	// Message says what is wrong, for a person.
	Message string `json:"message"`
	// Path names the offending node or key relative to the filter root,
	// e.g. "all[2].value"; empty for the root itself.
	Path string `json:"path"`
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Code + ": " + e.Message
	}
	return e.Code + " at " + e.Path + ": " + e.Message
}

func errorf(path, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidFilter, Message: fmt.Sprintf(format, args...), Path: path}
}
