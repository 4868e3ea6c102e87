package ncmec_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"takedown/pkg/ncmec"
	"takedown/pkg/ncmec/ncmecsim"
	"takedown/pkg/testenv"
)

// cassette is a VCR recording (ello/ncmec_reporting, exttest, 2016).
type cassette struct {
	Interactions []struct {
		Request struct {
			Method  string                  `yaml:"method"`
			URI     string                  `yaml:"uri"`
			Body    struct{ String string } `yaml:"body"`
			Headers map[string][]string     `yaml:"headers"`
		} `yaml:"request"`
		Response struct {
			Status struct {
				Code int `yaml:"code"`
			} `yaml:"status"`
			Headers map[string][]string     `yaml:"headers"`
			Body    struct{ String string } `yaml:"body"`
		} `yaml:"response"`
	} `yaml:"http_interactions"`
}

func loadCassettes(t *testing.T) map[string]cassette {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.SharedDir(t, "ncmec"), "recorded-2016", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings: %v", err)
	}
	out := map[string]cassette{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c cassette
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = c
	}
	return out
}

var (
	idFieldRE  = regexp.MustCompile(`^id=(\d+)`)
	codeRE     = regexp.MustCompile(`<responseCode>(\d+)</responseCode>`)
	reportIDRE = regexp.MustCompile(`<reportId>(\d+)</reportId>`)
	fileIDRE2  = regexp.MustCompile(`<fileId>([0-9a-f]+)</fileId>`)
)

func endpointOf(uri string) string { return uri[strings.LastIndex(uri, "/")+1:] }

// Every recorded response goes through the client's parser over real HTTP,
// and the client's requests match the recorded ones in method, path,
// content type and (for finish/retract) body.
func TestRecorded2016ResponsesParse(t *testing.T) {
	t.Parallel()
	for name, cas := range loadCassettes(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			next := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				in := cas.Interactions[i]
				if r.Method != strings.ToUpper(in.Request.Method) || "/ispws/"+endpointOf(in.Request.URI) != r.URL.Path {
					t.Errorf("request %d: %s %s, recorded %s %s", i, r.Method, r.URL.Path, in.Request.Method, in.Request.URI)
				}
				if ct := in.Request.Headers["Content-Type"]; len(ct) == 1 && r.Header.Get("Content-Type") != ct[0] {
					t.Errorf("request %d content type %q, recorded %q", i, r.Header.Get("Content-Type"), ct[0])
				}
				if ep := endpointOf(in.Request.URI); ep == "finish" || ep == "retract" {
					body, _ := io.ReadAll(r.Body)
					if string(body) != in.Request.Body.String {
						t.Errorf("request %d body %q, recorded %q", i, body, in.Request.Body.String)
					}
				}
				for k, vs := range in.Response.Headers {
					if k != "Content-Length" {
						w.Header()[k] = vs
					}
				}
				w.WriteHeader(in.Response.Status.Code)
				_, _ = io.WriteString(w, in.Response.Body.String)
			}))
			t.Cleanup(srv.Close)
			c, err := ncmec.New(ncmec.Options{BaseURL: srv.URL + "/ispws", Username: "u", Password: "p"})
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctx(t)
			for i, in := range cas.Interactions {
				var err error
				var gotReportID int64
				var gotFileID string
				body := in.Request.Body.String
				switch ep := endpointOf(in.Request.URI); ep {
				case "status":
					_, err = c.Status(ctx)
				case "submit":
					var r *ncmec.Response
					if r, err = c.SubmitXML(ctx, []byte(body)); err == nil {
						gotReportID = r.ReportID
					}
				case "upload":
					id, _ := strconv.ParseInt(idFieldRE.FindStringSubmatch(body)[1], 10, 64)
					var up *ncmec.UploadResult
					up, err = c.Upload(ctx, id, "bad_image.jpg", 4, strings.NewReader("jpeg"))
					if errors.Is(err, ncmec.ErrHashMismatch) {
						// The recorded MD5 is of a file we do not have; the
						// mismatch proves the hash was parsed.
						err = nil
					}
					if up != nil {
						gotReportID, gotFileID = up.ReportID, up.FileID
					}
				case "fileinfo":
					var r *ncmec.Response
					if r, err = c.FileInfoXML(ctx, []byte(body)); err == nil {
						gotReportID, gotFileID = r.ReportID, r.FileID
					}
				case "finish", "retract":
					id, _ := strconv.ParseInt(idFieldRE.FindStringSubmatch(body)[1], 10, 64)
					if ep == "finish" {
						var d *ncmec.DoneResponse
						if d, err = c.Finish(ctx, id); err == nil {
							gotReportID = d.ReportID
						}
					} else {
						var r *ncmec.Response
						if r, err = c.Retract(ctx, id); err == nil {
							gotReportID = r.ReportID
						}
					}
				default:
					t.Fatalf("unexpected endpoint %q", ep)
				}

				resp := in.Response.Body.String
				code := 0
				if m := codeRE.FindStringSubmatch(resp); m != nil {
					code, _ = strconv.Atoi(m[1])
				}
				switch {
				case in.Response.Status.Code == 401:
					if !ncmec.IsAuth(err) || ncmec.CodeOf(err) != code {
						t.Errorf("interaction %d: 401: got %v", i, err)
					}
				case code != 0:
					var e *ncmec.Error
					if !errors.As(err, &e) || e.Code != code || e.Description == "" || e.HTTPStatus != 200 {
						t.Errorf("interaction %d: code %d: got %v", i, code, err)
					}
				default:
					if err != nil {
						t.Errorf("interaction %d: %v", i, err)
						continue
					}
					if m := reportIDRE.FindStringSubmatch(resp); m != nil && strconv.FormatInt(gotReportID, 10) != m[1] {
						t.Errorf("interaction %d: report id %d, recorded %s", i, gotReportID, m[1])
					}
					if m := fileIDRE2.FindStringSubmatch(resp); m != nil && !strings.Contains(resp, "<files>") && gotFileID != m[1] {
						t.Errorf("interaction %d: file id %q, recorded %s", i, gotFileID, m[1])
					}
				}
			}
		})
	}
}

// shape is a document's root element and the names of its children.
func shape(t *testing.T, body []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(body))
	var out []string
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("shape of %q: %v", body, err)
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			if depth <= 1 {
				out = append(out, tt.Name.Local)
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// The simulator answers the recorded requests in the recorded shapes: same
// root element, same children in the same order.
func TestSimulatorMatchesRecordedShapes(t *testing.T) {
	t.Parallel()
	for name, cas := range loadCassettes(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, base := ncmecsim.StartTest(t, ncmecsim.Options{LegacyAuthBody: true})
			reportIDs := map[string]string{} // recorded -> simulator
			fileIDs := map[string]string{}
			for i, in := range cas.Interactions {
				ep := endpointOf(in.Request.URI)
				body := in.Request.Body.String
				var req *http.Request
				switch ep {
				case "status":
					req, _ = http.NewRequest(http.MethodGet, base+"/status", nil)
				case "submit":
					req, _ = http.NewRequest(http.MethodPost, base+"/submit", strings.NewReader(body))
					req.Header.Set("Content-Type", "text/xml; charset=utf-8")
				case "upload":
					id := reportIDs[idFieldRE.FindStringSubmatch(body)[1]]
					var buf bytes.Buffer
					mw := multipart.NewWriter(&buf)
					_ = mw.WriteField("id", id)
					fw, _ := mw.CreateFormFile("file", "bad_image.jpg")
					_, _ = fw.Write([]byte("jpeg bytes"))
					_ = mw.Close()
					req, _ = http.NewRequest(http.MethodPost, base+"/upload", &buf)
					req.Header.Set("Content-Type", mw.FormDataContentType())
				case "fileinfo":
					for rec, sim := range reportIDs {
						body = strings.ReplaceAll(body, rec, sim)
					}
					for rec, sim := range fileIDs {
						body = strings.ReplaceAll(body, rec, sim)
					}
					req, _ = http.NewRequest(http.MethodPost, base+"/fileinfo", strings.NewReader(body))
					req.Header.Set("Content-Type", "text/xml; charset=utf-8")
				case "finish", "retract":
					id := reportIDs[idFieldRE.FindStringSubmatch(body)[1]]
					req, _ = http.NewRequest(http.MethodPost, base+"/"+ep, strings.NewReader("id="+id))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				user, pass := ncmecsim.TestUsername, ncmecsim.TestPassword
				if in.Response.Status.Code == 401 {
					pass = "wrong"
				}
				req.SetBasicAuth(user, pass)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != in.Response.Status.Code {
					t.Errorf("interaction %d (%s): status %d, recorded %d", i, ep, resp.StatusCode, in.Response.Status.Code)
				}
				if in.Response.Status.Code == 401 && resp.Header.Get("WWW-Authenticate") != in.Response.Headers["WWW-Authenticate"][0] {
					t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
				}
				if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml") {
					t.Errorf("interaction %d: content type %q", i, resp.Header.Get("Content-Type"))
				}
				want := []byte(in.Response.Body.String)
				if diff := cmp.Diff(shape(t, want), shape(t, got)); diff != "" {
					t.Errorf("interaction %d (%s) shape (-recorded +simulator):\n%s\nsimulator said: %s", i, ep, diff, got)
				}
				if m := reportIDRE.FindSubmatch(want); m != nil {
					if g := reportIDRE.FindSubmatch(got); g != nil {
						reportIDs[string(m[1])] = string(g[1])
					}
				}
				if m := fileIDRE2.FindSubmatch(want); m != nil && ep == "upload" {
					if g := fileIDRE2.FindSubmatch(got); g != nil {
						fileIDs[string(m[1])] = string(g[1])
					}
				}
			}
		})
	}
}
