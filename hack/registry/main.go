// Command signet-test-registry serves the in-memory OCI registry of
// github.com/google/go-containerregistry/pkg/registry on loopback for Signet's image tests
// (test/support/oci-registry.ts starts it). Around that registry it adds what a real one has and
// the tests need:
//
//   - TLS from -tls-cert/-tls-key (the test support makes a CA and a leaf for 127.0.0.1);
//   - token authentication as the distribution spec describes: a request without valid
//     credentials gets 401 with `WWW-Authenticate: Bearer realm="https://<host>/token",
//     service="<service>",scope="repository:<name>:<actions>"`; GET /token checks Basic
//     credentials and returns {"token","access_token","expires_in","issued_at"}; a bearer token
//     grants the repositories and actions of the scopes it was issued for, for -token-ttl;
//     plain Basic credentials are accepted on /v2/ too;
//   - referrers as OCI 1.1 describes them: the referrers list carries each manifest's top-level
//     artifactType (falling back to its config media type), honours ?artifactType= with
//     OCI-Filters-Applied, is sorted by digest, and a manifest PUT with a subject answers with
//     OCI-Subject; -referrers=false turns the API off (404, so clients use the sha256-<hex> tag);
//   - a request log: one JSON line per request ({"method","path","query","status"}) to -log,
//     written before the response's first byte, so a test that has its answer can count it;
//   - faults for tests: PUT /_control/fault with body none|fail|hang makes every /v2/ and /token
//     request succeed, fail with 503, or hang until the client gives up (or the fault is reset).
//
// On start it prints one JSON line on stdout: {"address":"127.0.0.1:<port>"}.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

type config struct {
	addr, certFile, keyFile, username, password, service, logFile string
	referrers                                                     bool
	tokenTTL                                                      time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:0", "listen address")
	flag.StringVar(&cfg.certFile, "tls-cert", "", "PEM certificate (chain) to serve; empty serves plain HTTP")
	flag.StringVar(&cfg.keyFile, "tls-key", "", "PEM private key of -tls-cert")
	flag.StringVar(&cfg.username, "username", "", "user name; empty turns authentication off")
	flag.StringVar(&cfg.password, "password", "", "password of -username")
	flag.StringVar(&cfg.service, "service", "signet-test-registry", "service named in the Bearer challenge")
	flag.StringVar(&cfg.logFile, "log", "", "file to append the request log to (JSON lines); empty: stderr")
	flag.BoolVar(&cfg.referrers, "referrers", true, "serve the OCI 1.1 referrers API")
	flag.DurationVar(&cfg.tokenTTL, "token-ttl", 5*time.Minute, "lifetime of issued bearer tokens")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "signet-test-registry:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	requestLog, err := openLog(cfg.logFile)
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(cfg.referrers))
	srv := &server{cfg: cfg, inner: inner, log: requestLog, secret: secret, fault: "none"}
	srv.faultChanged = make(chan struct{})
	listener, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	announce, _ := json.Marshal(map[string]string{"address": listener.Addr().String()})
	fmt.Println(string(announce))
	httpServer := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	if cfg.certFile != "" {
		return httpServer.ServeTLS(listener, cfg.certFile, cfg.keyFile)
	}
	return httpServer.Serve(listener)
}

func openLog(path string) (*lineLog, error) {
	if path == "" {
		return &lineLog{out: os.Stderr}, nil
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &lineLog{out: file}, nil
}

type lineLog struct {
	mu  sync.Mutex
	out io.Writer
}

func (l *lineLog) write(entry any) {
	line, _ := json.Marshal(entry)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out.Write(append(line, '\n'))
}

type server struct {
	cfg          config
	inner        http.Handler
	log          *lineLog
	secret       []byte
	mu           sync.Mutex
	fault        string
	faultChanged chan struct{}
}

type logEntry struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query,omitempty"`
	Status int    `json:"status"`
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_control/") {
		s.control(w, r)
		return
	}
	lw := &loggingWriter{ResponseWriter: w, onStatus: func(status int) {
		s.log.write(logEntry{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: status})
	}}
	defer lw.finish()
	if s.injectFault(lw, r) {
		return
	}
	if r.URL.Path == "/token" {
		s.token(lw, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v2") {
		http.NotFound(lw, r)
		return
	}
	if !s.authorized(r) {
		s.challenge(lw, r)
		return
	}
	s.registry(lw, r)
}

// loggingWriter logs a request once, when its status is known and before any byte of the body.
type loggingWriter struct {
	http.ResponseWriter
	onStatus func(int)
	logged   bool
}

func (w *loggingWriter) WriteHeader(status int) {
	if !w.logged {
		w.logged = true
		w.onStatus(status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *loggingWriter) Write(b []byte) (int, error) {
	if !w.logged {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *loggingWriter) finish() {
	if !w.logged {
		w.WriteHeader(http.StatusOK)
	}
}

func (s *server) control(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_control/fault" || r.Method != http.MethodPut {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64))
	mode := strings.TrimSpace(string(body))
	if mode != "none" && mode != "fail" && mode != "hang" {
		http.Error(w, "fault must be none, fail or hang", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.fault = mode
	close(s.faultChanged)
	s.faultChanged = make(chan struct{})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// injectFault answers the request itself when a fault is set and reports whether it did.
func (s *server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	for {
		s.mu.Lock()
		mode, changed := s.fault, s.faultChanged
		s.mu.Unlock()
		switch mode {
		case "fail":
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}`, http.StatusServiceUnavailable)
			return true
		case "hang":
			select {
			case <-r.Context().Done():
				w.WriteHeader(499) // logged as the client giving up; nobody reads the answer
				return true
			case <-changed:
				continue
			}
		default:
			return false
		}
	}
}

// --- authentication -------------------------------------------------------------------------

type grant struct {
	Repository string   `json:"repository"`
	Actions    []string `json:"actions"`
}

type claims struct {
	Grants  []grant `json:"grants"`
	Expires int64   `json:"expires"`
}

func (s *server) checkBasic(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.username)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.password)) == 1
	return userOK && passOK
}

func (s *server) token(w http.ResponseWriter, r *http.Request) {
	if s.cfg.username != "" && !s.checkBasic(r) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q`, s.cfg.service))
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "token endpoint needs valid Basic credentials")
		return
	}
	var grants []grant
	for _, scope := range r.URL.Query()["scope"] {
		for _, one := range strings.Split(scope, " ") {
			parts := strings.Split(one, ":")
			if len(parts) == 3 && parts[0] == "repository" {
				grants = append(grants, grant{Repository: parts[1], Actions: strings.Split(parts[2], ",")})
			}
		}
	}
	issued := time.Now()
	token := s.sign(claims{Grants: grants, Expires: issued.Add(s.cfg.tokenTTL).Unix()})
	writeJSON(w, map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   int(s.cfg.tokenTTL.Seconds()),
		"issued_at":    issued.UTC().Format(time.RFC3339),
	})
}

func (s *server) sign(c claims) string {
	payload, _ := json.Marshal(c)
	mac := hmac.New(sha256.New, s.secret)
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + hex.EncodeToString(mac.Sum(nil))
}

func (s *server) verify(token string) (claims, bool) {
	var c claims
	encoded, sig, ok := strings.Cut(token, ".")
	if !ok {
		return c, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(encoded)
	if err != nil {
		return c, false
	}
	mac := hmac.New(sha256.New, s.secret)
	mac.Write(payload)
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(sig)) {
		return c, false
	}
	if json.Unmarshal(payload, &c) != nil || time.Now().Unix() >= c.Expires {
		return c, false
	}
	return c, true
}

func (s *server) authorized(r *http.Request) bool {
	if s.cfg.username == "" {
		return true
	}
	header := r.Header.Get("Authorization")
	if strings.HasPrefix(header, "Basic ") {
		return s.checkBasic(r)
	}
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return false
	}
	c, valid := s.verify(token)
	if !valid {
		return false
	}
	repo, action := repositoryOf(r.URL.Path), actionOf(r.Method)
	if repo == "" {
		return true // /v2/ itself: any valid token
	}
	for _, g := range c.Grants {
		if g.Repository == repo && (contains(g.Actions, action) || contains(g.Actions, "*")) {
			return true
		}
	}
	return false
}

func (s *server) challenge(w http.ResponseWriter, r *http.Request) {
	value := fmt.Sprintf(`Bearer realm="https://%s/token",service=%q`, r.Host, s.cfg.service)
	if s.cfg.certFile == "" {
		value = fmt.Sprintf(`Bearer realm="http://%s/token",service=%q`, r.Host, s.cfg.service)
	}
	if repo := repositoryOf(r.URL.Path); repo != "" {
		actions := "pull"
		if actionOf(r.Method) == "push" {
			actions = "pull,push"
		}
		value += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, actions)
	}
	w.Header().Set("WWW-Authenticate", value)
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

// repositoryOf returns the repository a /v2/<name>/(manifests|blobs|tags|referrers)/... path names.
func repositoryOf(path string) string {
	elems := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(elems) - 1; i >= 2; i-- {
		switch elems[i] {
		case "manifests", "blobs", "tags", "referrers":
			return strings.Join(elems[1:i], "/")
		}
	}
	return ""
}

func actionOf(method string) string {
	if method == http.MethodGet || method == http.MethodHead {
		return "pull"
	}
	return "push"
}

func contains(list []string, value string) bool {
	for _, item := range list {
		if item == value {
			return true
		}
	}
	return false
}

// --- registry -------------------------------------------------------------------------------

func (s *server) registry(w http.ResponseWriter, r *http.Request) {
	elems := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	isReferrers := len(elems) >= 4 && elems[len(elems)-2] == "referrers"
	isManifest := len(elems) >= 4 && elems[len(elems)-2] == "manifests"
	switch {
	case s.cfg.referrers && isReferrers && r.Method == http.MethodGet:
		s.referrers(w, r)
	case s.cfg.referrers && isManifest && r.Method == http.MethodPut:
		s.putManifest(w, r)
	default:
		s.inner.ServeHTTP(w, r)
	}
}

// maxManifestBytes bounds what putManifest reads; larger manifests are refused, never truncated.
const maxManifestBytes = 64 << 20

// putManifest answers a manifest with a subject with OCI-Subject, as OCI 1.1 registries do.
func (s *server) putManifest(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
		return
	}
	if len(body) > maxManifestBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", "manifest larger than 64 MiB")
		return
	}
	var withSubject struct {
		Subject *struct {
			Digest string `json:"digest"`
		} `json:"subject"`
	}
	_ = json.Unmarshal(body, &withSubject)
	if withSubject.Subject != nil && withSubject.Subject.Digest != "" {
		w.Header().Set("OCI-Subject", withSubject.Subject.Digest)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	s.inner.ServeHTTP(w, r)
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// referrers fixes the inner registry's list: artifactType from each manifest, the filter, order.
func (s *server) referrers(w http.ResponseWriter, r *http.Request) {
	recorder := httptest.NewRecorder()
	s.inner.ServeHTTP(recorder, r)
	if recorder.Code != http.StatusOK {
		copyResponse(w, recorder)
		return
	}
	var list index
	if err := json.Unmarshal(recorder.Body.Bytes(), &list); err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	repo := repositoryOf(r.URL.Path)
	wanted := r.URL.Query().Get("artifactType")
	kept := []descriptor{}
	for _, d := range list.Manifests {
		if artifactType := s.artifactTypeOf(r, repo, d.Digest); artifactType != "" {
			d.ArtifactType = artifactType
		}
		if wanted == "" || d.ArtifactType == wanted {
			kept = append(kept, d)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Digest < kept[j].Digest })
	list.Manifests = kept
	body, _ := json.Marshal(list)
	if wanted != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (s *server) artifactTypeOf(r *http.Request, repo, digest string) string {
	get := httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/manifests/"+digest, nil).WithContext(r.Context())
	recorder := httptest.NewRecorder()
	s.inner.ServeHTTP(recorder, get)
	var manifest struct {
		ArtifactType string `json:"artifactType"`
	}
	if recorder.Code != http.StatusOK || json.Unmarshal(recorder.Body.Bytes(), &manifest) != nil {
		return ""
	}
	return manifest.ArtifactType
}

func copyResponse(w http.ResponseWriter, recorder *httptest.ResponseRecorder) {
	for key, values := range recorder.Header() {
		w.Header()[key] = values
	}
	w.WriteHeader(recorder.Code)
	w.Write(recorder.Body.Bytes())
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, value any) {
	body, _ := json.Marshal(value)
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}
