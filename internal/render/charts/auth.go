package charts

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"strings"
)

// maxAuthFile bounds a repository credentials file.
const maxAuthFile = 1 << 20

// ParseRepoAuth reads a Helm repository credentials file: one repository
// a line, "URL USERNAME:PASSWORD" (the password may hold ':' and spaces;
// the line's remaining text is the password), blank lines and lines
// starting with '#' ignored. URL is an http(s) URL without credentials,
// query or fragment; it matches requests whose URL starts with it, in
// whole path segments. Errors name the line, never its password.
func ParseRepoAuth(data []byte) ([]RepoCredential, error) {
	if len(data) > maxAuthFile {
		return nil, fmt.Errorf("credentials file: larger than %d bytes", maxAuthFile)
	}
	var out []RepoCredential
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxAuthFile)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		rawURL, login, ok := strings.Cut(trimmed, " ")
		user, pass, ok2 := strings.Cut(strings.TrimLeft(login, " "), ":")
		if !ok || !ok2 || user == "" {
			return nil, fmt.Errorf("credentials file line %d: want \"URL USERNAME:PASSWORD\"", n)
		}
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("credentials file line %d: %q is not an http(s) repository URL without credentials, query or fragment", n, rawURL)
		}
		if strings.ContainsAny(user, " \t") {
			return nil, fmt.Errorf("credentials file line %d: username with spaces", n)
		}
		out = append(out, RepoCredential{URLPrefix: rawURL, Username: user, Password: pass})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	return out, nil
}
