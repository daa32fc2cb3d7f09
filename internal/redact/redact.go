// Package redact removes credentials from URLs and from text that may
// quote URLs (git's error output, parse errors), before anything is shown
// to a client or written to a log.
package redact

import (
	"regexp"
	"strings"
)

// Mask replaces a credential.
const Mask = "***"

// userinfo matches "scheme://userinfo@" in free text. The scheme may be
// malformed or empty (" ://u:pw@" in a parse error is still a credential).
// The userinfo stops at the first '/', '@', space or quote, so a redaction
// never eats past the host.
var userinfo = regexp.MustCompile(`([A-Za-z0-9+.-]*://)([^/@\s"'<>]*)@`)

// Text returns s with the userinfo of every URL in it replaced by Mask:
// "https://u:pw@h/x" becomes "https://***@h/x". An ssh user name alone
// ("ssh://git@h/x") names an account, not a secret, and is kept; an ssh
// password is masked with its user.
func Text(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if strings.EqualFold(scheme, "ssh://") && !strings.Contains(info, ":") && !strings.Contains(info, "%") {
			return m
		}
		return scheme + Mask + "@"
	})
}
