package config

import (
	"net/url"
	"slices"

	"gopkg.in/yaml.v3"
)

// masked stands in for a secret in printed configuration.
const masked = "********"

// Masked returns a copy of c in which every secret is replaced by ********:
// the admin token, upstream API keys, and passwords inside connection URLs.
// What is not set stays empty, so a reader can tell "set" from "missing".
func (c *Config) Masked() *Config {
	m := *c
	if m.Server.AdminToken != "" {
		m.Server.AdminToken = masked
	}
	m.Upstreams = slices.Clone(c.Upstreams)
	for i := range m.Upstreams {
		if m.Upstreams[i].APIKey != "" {
			m.Upstreams[i].APIKey = masked
		}
		m.Upstreams[i].maskProvider()
		if h := m.Upstreams[i].Headers; len(h) > 0 {
			m.Upstreams[i].Headers = make(map[string]string, len(h))
			for name := range h {
				m.Upstreams[i].Headers[name] = masked
			}
		}
	}
	m.Store.DSN = maskURL(c.Store.DSN)
	m.Limits.Redis.URL = maskURL(c.Limits.Redis.URL)
	if c.Cache.Redis != "off" {
		m.Cache.Redis = maskURL(c.Cache.Redis)
	}
	return &m
}

// maskURL hides the password of a connection URL, and the whole value when
// it cannot be parsed (it may hold a secret in a form we do not know).
func maskURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return masked
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// YAML is the configuration as YAML, with every default filled in.
func (c *Config) YAML() ([]byte, error) {
	return yaml.Marshal(c)
}
