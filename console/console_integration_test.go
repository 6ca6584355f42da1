package console_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"cdp/config"
	"cdp/demo"
	"cdp/indexer"
	"cdp/testing/harness"
)

// The console's browser tests: a real Chromium (Debian's chromium package,
// which `scripts/deps.sh up` installs) driven through the DevTools
// protocol by chromedp, against the real API and indexer in this process.
// CDP_SCREENSHOTS_DIR=docs (relative to the repository) makes them save
// the README's screenshots there.

// chromium finds the browser, or fails the test saying how to get one.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: needs Chromium and the services (skipped under -short)")
	}
	for _, name := range []string{os.Getenv("CDP_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: `scripts/deps.sh up` installs Debian's chromium (or set CDP_CHROMIUM to a Chrome binary)")
	return ""
}

// session is one browser tab on the console, with the page's errors
// failing the test.
type session struct {
	t    *testing.T
	ctx  context.Context
	base string
	api  *client
	// downloads receives the GUID of every finished download.
	downloads chan string
	dir       string
	// errs are the page's uncaught exceptions and console errors.
	errs chan string
}

func ptr[T any](v T) *T { return &v }

func newSession(t *testing.T, base string, api *client) *session {
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1440, 1000), chromedp.Flag("lang", "en-US"), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	s := &session{t: t, ctx: ctx, base: base, api: api, downloads: make(chan string, 4), dir: t.TempDir(), errs: make(chan string, 100)}
	// The first call starts the browser, for the life of ctx: no deadline.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleError {
				select {
				case s.errs <- string(m.Type) + ": " + m.Text:
				default:
				}
			}
		}
	}()
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	go func() {
		for ev, err := range progress {
			if err != nil {
				return
			}
			if ev.State == browser.DownloadProgressStateCompleted {
				s.downloads <- ev.GUID
			}
		}
	}()
	s.run("allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: s.dir, EventsEnabled: ptr(true)})
		return err
	}))
	return s
}

func (s *session) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	// Each step has its own deadline; the browser lives as long as the test.
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		if dir := os.Getenv("CDP_FAILURE_DIR"); dir != "" {
			s.screenshot(filepath.Join(dir, "failure.png"))
		}
		s.t.Fatalf("%s: %v", what, err)
	}
}

// pick types into a combobox and takes the option of that value with Enter.
func (s *session) pick(input, typed, value string) {
	s.t.Helper()
	box := strings.TrimSuffix(input, " input")
	s.run("pick "+value+" in "+input,
		keys(input, typed),
		visible(fmt.Sprintf(`%s .combo-opt.active[data-value=%q]`, box, value)),
		keys(input, kb.Enter))
}

func (s *session) text(sel string) string {
	s.t.Helper()
	v, err := chromedp.Run(s.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		s.t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

// pageErrors fails the test on the page's uncaught exceptions and logs its
// console errors.
func (s *session) pageErrors() {
	s.t.Helper()
	for {
		select {
		case e := <-s.errs:
			if strings.HasPrefix(e, string(chromedp.ConsoleException)) {
				s.t.Errorf("the page threw: %s", e)
			} else {
				s.t.Logf("page console: %s", e)
			}
		default:
			return
		}
	}
}

// js is the value of a JavaScript expression, as a string.
func (s *session) js(expr string) string {
	s.t.Helper()
	v, err := chromedp.Run(s.ctx, chromedp.Evaluate[string](`String(`+expr+`)`))
	if err != nil {
		s.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// attr is an attribute of the element ("" when it has none).
func (s *session) attr(sel, name string) string {
	s.t.Helper()
	v, err := chromedp.Run(s.ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		s.t.Fatalf("read %s of %s: %v", name, sel, err)
	}
	return v.Value
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
func keys(sel, v string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(chromedp.CSS(sel), v)
}
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

func (s *session) screenshot(path string) {
	buf, err := chromedp.Run(s.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Logf("screenshot %s: %v", path, err)
		return
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		s.t.Logf("screenshot %s: %v", path, err)
	}
}

// docShot saves a README screenshot when CDP_SCREENSHOTS_DIR is set.
func (s *session) docShot(name string) {
	if dir := os.Getenv("CDP_SCREENSHOTS_DIR"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", dir)
		}
		s.screenshot(filepath.Join(dir, name))
	}
}

// client calls the API as the tests' reference.
type client struct {
	t         *testing.T
	base, key string
}

func (c *client) do(method, path string, body, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if bp, ok := out.(*[]byte); ok {
			*bp = b
		} else if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		c.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func (c *client) count(filter any) int64 {
	c.t.Helper()
	var r struct{ Count int64 }
	if st := c.do(http.MethodPost, "/v1/customers/count", map[string]any{"filter": filter}, &r); st != 200 {
		c.t.Fatalf("count: HTTP %d", st)
	}
	return r.Count
}

func jsonOf(t *testing.T, format string, a ...any) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(fmt.Sprintf(format, a...)), &v); err != nil {
		t.Fatalf("%v: %s", err, fmt.Sprintf(format, a...))
	}
	return v
}

// world is the dataset of the browser tests: demo customers indexed by a
// real indexer behind a real API.
type world struct {
	cfg *config.Config
	srv string
	p   sarama.SyncProducer
}

func newWorld(t *testing.T, customers int) *world {
	e := harness.Services(t)
	cfg := e.Config(t)
	p := e.Producer(t)
	if err := p.SendMessages(demo.Messages(demo.Config{Customers: customers, Seed: 7, Now: time.Now()}, cfg.Topic)); err != nil {
		t.Fatal(err)
	}
	e.StartIndexer(t, cfg)
	srv := e.StartAPI(t, cfg)
	c := &client{t: t, base: srv.URL}
	harness.Eventually(t, 90*time.Second, func() (bool, string) {
		n := c.count(map[string]any{"all": []any{}})
		return n == int64(customers), fmt.Sprintf("%d of %d customers indexed", n, customers)
	})
	return &world{cfg: cfg, srv: srv.URL, p: p}
}

func TestAMarketerBuildsAnAudienceWithMouseAndKeyboardSavesItExportsItAndOpensACustomerFromTheSearchBox(t *testing.T) {
	chromium(t)
	start := time.Now()
	w := newWorld(t, 400)
	api := &client{t: t, base: w.srv, key: harness.AdminKey(t, w.cfg)}
	t.Logf("dataset indexed in %s", time.Since(start).Round(time.Millisecond))

	// Segment S, and the audience's parameters chosen so that every part
	// of the filter matters: the sku most bought by women in the last 30
	// days, and a spend threshold that leaves some of them out.
	var seg struct{ ID string }
	if st := api.do(http.MethodPost, "/v1/segments", map[string]any{"name": "金卡会员 Gold members",
		"filter": map[string]any{"field": "member_level", "op": "eq", "value": "gold"}}, &seg); st != 201 {
		t.Fatalf("create segment S: HTTP %d", st)
	}
	want := func(sku string, threshold int, notS bool) any {
		s := `{"all":[{"field":"gender","op":"eq","value":"female"},
		  {"nested":"orders","match":"any","where":{"all":[{"field":"orders.status","op":"eq","value":"paid"},
		    {"field":"orders.items.sku","op":"eq","value":%q},{"field":"orders.created_at","op":"in_last","value":"30d"}]}},
		  {"field":"metrics.total_spend","op":"gt","value":%d}`
		if notS {
			s += `,{"not":{"segment":%q}}]}`
			return jsonOf(t, s, sku, threshold, seg.ID)
		}
		return jsonOf(t, s+"]}", sku, threshold)
	}
	sku, threshold, best := "", 0, int64(0)
	for _, p := range demo.Products {
		all := api.count(want(p.SKU, 0, false))
		for _, th := range []int{3000, 2000, 1500, 1000, 500} {
			n := api.count(want(p.SKU, th, true))
			if n > best && n < api.count(want(p.SKU, th, false)) && api.count(want(p.SKU, th, false)) < all {
				sku, threshold, best = p.SKU, th, n
			}
		}
	}
	filter := want(sku, threshold, true)
	wantCount := api.count(filter)
	if wantCount == 0 || wantCount >= api.count(want(sku, threshold, false)) {
		t.Fatalf("the dataset does not exercise the audience: %d customers, %d without the segment condition", wantCount, api.count(want(sku, threshold, false)))
	}

	s := newSession(t, w.srv, api)
	browserStart := time.Now()
	// Log in with the key; the language switch turns the console to Chinese.
	s.login()
	if got := s.text(`#nav-builder`); got != "Audience builder" {
		t.Fatalf("the English console's first tab reads %q", got)
	}
	s.run("switch to Chinese", click(`#lang`), visible(`#main[data-ready="builder"] #root`))
	if got := s.text(`#nav-builder`); got != "人群圈选" {
		t.Fatalf("after the switch the first tab reads %q, want 人群圈选", got)
	}

	// female
	root := `#root > .children > .node`
	nth := func(base string, i int) string { return fmt.Sprintf("%s:nth-child(%d)", base, i) }
	s.run("add a condition", click(`#root > .group-actions > .add-cond`))
	c1 := nth(root, 1)
	s.pick(c1+" .field-pick input", "gender", "gender")
	s.pick(c1+" .value-pick input", "female", "female")
	// paid an order containing the sku in the last 30 days: one order.
	s.run("add an order condition", click(`#root > .group-actions > .add-order`))
	o := nth(root, 2)
	oc := o + " > .children > .node"
	s.pick(nth(oc, 1)+" .field-pick input", "orders.status", "orders.status")
	s.pick(nth(oc, 1)+" .value-pick input", "paid", "paid")
	s.run("add a condition to the order", click(o+" > .group-actions > .add-cond"))
	s.pick(nth(oc, 2)+" .field-pick input", "orders.items.sku", "orders.items.sku")
	s.pick(nth(oc, 2)+" .value-pick input", sku, sku)
	s.run("add a date condition to the order", click(o+" > .group-actions > .add-cond"))
	s.pick(nth(oc, 3)+" .field-pick input", "orders.created_at", "orders.created_at")
	s.run("in the last 30 days", keys(nth(oc, 3)+" .window input", "30"))
	// spent over the threshold
	s.run("add a spend condition", click(`#root > .group-actions > .add-cond`))
	s.pick(nth(root, 3)+" .field-pick input", "total_spend", "metrics.total_spend")
	s.run("over the threshold", keys(nth(root, 3)+" input.val", fmt.Sprint(threshold)))
	// not in segment S
	s.run("add a segment reference", click(`#root > .group-actions > .add-segment`))
	s.pick(nth(root, 4)+" .seg-pick input", "金卡", seg.ID)
	s.run("negate it", click(nth(root, 4)+" .not-toggle"))

	// The live preview settles on the same filter and the API's count.
	if count := s.previewSettles(filter); count != fmt.Sprint(wantCount) {
		t.Fatalf("the preview shows %s customers, POST /v1/customers/count says %d", count, wantCount)
	}
	s.docShot("console-builder.png")
	// A switch of language keeps the audience being built.
	for _, nav := range []string{"Audience builder", "人群圈选"} {
		s.run("switch the language", click(`#lang`), visible(`#main[data-ready="builder"] #root`))
		if got := s.text(`#nav-builder`); got != nav {
			t.Fatalf("the first tab reads %q, want %q", got, nav)
		}
		s.previewSettles(filter)
	}

	// Save it; the segments page lists it with its size.
	name := "测试人群 e2e"
	s.run("save as a segment", keys(`#save-name`, name), click(`#save-segment`),
		visible(`#segments`))
	var list struct {
		Segments []struct {
			ID, Name string
			Filter   any
		}
	}
	api.do(http.MethodGet, "/v1/segments", nil, &list)
	var saved string
	for _, x := range list.Segments {
		if x.Name == name {
			saved = x.ID
			if !reflect.DeepEqual(x.Filter, filter) {
				t.Fatalf("saved filter %v, want %v", x.Filter, filter)
			}
		}
	}
	if saved == "" {
		t.Fatalf("no segment named %q after saving: %+v", name, list.Segments)
	}
	row := fmt.Sprintf(`#segments tr[data-id=%q]`, saved)
	s.run("wait for the size", visible(row+` .size[data-size]`))
	if got := s.text(row + " .size"); strings.ReplaceAll(got, ",", "") != fmt.Sprint(wantCount) {
		t.Fatalf("the segments page shows size %q, want %d", got, wantCount)
	}
	s.docShot("console-segments.png")

	// Edit loads the saved filter back into the builder, unchanged.
	s.run("edit it", click(row+" .edit"), visible(`#root`))
	s.previewSettles(filter)
	s.run("back to the segments", click(`#nav-segments`), visible(row+` .size[data-size]`))

	// Export it as CSV for Excel: the file holds the API's rows.
	s.run("export as CSV with a BOM", click(`#bom`), click(row+" .export-csv"))
	var guid string
	select {
	case guid = <-s.downloads:
	case <-time.After(20 * time.Second):
		t.Fatal("the CSV download never finished")
	}
	got, err := os.ReadFile(filepath.Join(s.dir, guid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("\xef\xbb\xbf")) {
		t.Fatalf("the Excel export does not start with a BOM: %q", got[:min(len(got), 20)])
	}
	var ref []byte
	if st := api.do(http.MethodGet, "/v1/segments/"+saved+"/export?format=csv&bom=true", nil, &ref); st != 200 {
		t.Fatalf("API export: HTTP %d", st)
	}
	gotRows, refRows := csvRows(t, got), csvRows(t, ref)
	if len(gotRows) != int(wantCount)+1 || !reflect.DeepEqual(gotRows, refRows) {
		t.Fatalf("downloaded %d rows, the API exports %d (want %d members and a header); first: %v vs %v",
			len(gotRows), len(refRows), wantCount, gotRows[:min(2, len(gotRows))], refRows[:min(2, len(refRows))])
	}

	// Find one of them in the search box by 8 digits of the phone and open
	// the 360 view with the keyboard.
	var members struct {
		Customers []map[string]any
	}
	api.do(http.MethodPost, "/v1/customers/search", map[string]any{"filter": filter, "size": 1}, &members)
	who := members.Customers[0]
	cid, phone := who["customer_id"].(string), who["phone"].(string)
	s.run("search by phone", click(`#nav-search`),
		keys(`#search-box`, phone[len(phone)-8:]),
		visible(fmt.Sprintf(`#search-results li.active[data-id=%q] mark`, cid)),
		keys(`#search-box`, kb.Enter),
		visible(fmt.Sprintf(`#c360[data-customer=%q]`, cid)))
	if got := s.text(`#c360-name`); got != who["name"] {
		t.Fatalf("the 360 page shows %q, want %q", got, who["name"])
	}

	// A new order shows on the open page without a reload.
	orders := s.attr(`#c360`, "data-orders")
	crm := ""
	for _, id := range who["identities"].([]any) {
		if m := id.(map[string]any); m["type"] == "crm_id" {
			crm = m["value"].(string)
		}
	}
	order := map[string]any{"before": nil, "op": "c", "source": map[string]any{"lsn": 1 << 40, "ts_ms": time.Now().UnixMilli()},
		"after": map[string]any{"id": 999_000_001, "customer_id": crm, "order_no": "LIVE-1", "status": "paid", "total_amount": 88.0,
			"created_at": time.Now().UTC().Format(time.RFC3339)}}
	b, _ := json.Marshal(order)
	if _, _, err := w.p.SendMessage(&sarama.ProducerMessage{Topic: w.cfg.Topic(indexer.TopicOrders), Key: sarama.StringEncoder("999000001"), Value: sarama.ByteEncoder(b)}); err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(orders, &n)
	s.run("see the new order", visible(fmt.Sprintf(`#c360[data-orders="%d"] tr[data-order="999000001"]`, n+1)))
	s.docShot("console-360.png")
	s.run("back to English", click(`#lang`), visible(`#c360 .profile`))
	if got := s.text(`#nav-search`); got != "Search" {
		t.Fatalf("after switching back the search tab reads %q", got)
	}
	t.Logf("browser part took %s", time.Since(browserStart).Round(time.Millisecond))
	s.pageErrors()
}

// column0 is the first cell of each row, and the header row whole.
func column0(rows [][]string) []string {
	if len(rows) == 0 {
		return nil
	}
	out := []string{strings.Join(rows[0], ",")}
	for _, r := range rows[1:] {
		out = append(out, r[0])
	}
	return out
}

// csvRows parses a CSV export (BOM and all), rows sorted after the header.
func csvRows(t *testing.T, b []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) > 1 {
		body := rows[1:]
		sort.Slice(body, func(i, j int) bool { return strings.Join(body[i], ",") < strings.Join(body[j], ",") })
	}
	return rows
}

// previewSettles waits until the preview has answered for filter, and
// returns the count it shows.
func (s *session) previewSettles(filter any) string {
	s.t.Helper()
	var state, count string
	harness.Eventually(s.t, 15*time.Second, func() (bool, string) {
		state, count = s.attr(`#preview-count`, "data-state"), s.attr(`#preview-count`, "data-count")
		f := s.attr(`#preview-count`, "data-filter")
		var shown any
		_ = json.Unmarshal([]byte(f), &shown)
		return state == "ready" && reflect.DeepEqual(shown, filter), fmt.Sprintf("preview %s of %s", state, f)
	})
	return count
}

// login opens the console and logs in with the session's key.
func (s *session) login() {
	s.t.Helper()
	s.run("log in", chromedp.Navigate(s.base+"/console/"),
		visible(`#api-key`), keys(`#api-key`, s.api.key+kb.Enter), visible(`#main[data-ready="builder"] #root`))
}

func TestTheConsoleShowsAnAPIErrorAtItsConditionWhoReferencesASegmentAndAnExportJobsFile(t *testing.T) {
	chromium(t)
	w := newWorld(t, 150)
	harness.Services(t).StartExportRunner(t, w.cfg, "console-test", nil)
	api := &client{t: t, base: w.srv, key: harness.AdminKey(t, w.cfg)}
	var a, b struct{ ID string }
	api.do(http.MethodPost, "/v1/segments", map[string]any{"name": "北京 A", "filter": map[string]any{"field": "city", "op": "eq", "value": "北京"}}, &a)
	api.do(http.MethodPost, "/v1/segments", map[string]any{"name": "引用 B", "filter": map[string]any{"segment": a.ID}}, &b)
	if a.ID == "" || b.ID == "" {
		t.Fatal("could not create the segments")
	}
	s := newSession(t, w.srv, api)
	s.login()

	// A value the API refuses: its message shows at that condition only.
	root := `#root > .children > .node`
	nth := func(i int) string { return fmt.Sprintf("%s:nth-child(%d)", root, i) }
	s.run("add two conditions", click(`#root > .group-actions > .add-cond`))
	s.pick(nth(1)+" .field-pick input", "gender", "gender")
	s.pick(nth(1)+" .value-pick input", "female", "female")
	s.run("add a second", click(`#root > .group-actions > .add-cond`))
	s.pick(nth(2)+" .field-pick input", "city", "city")
	s.run("choose contains", chromedp.Focus(chromedp.CSS(nth(2)+" select.op")))
	// The operator list of a keyword is eq, neq, in, not_in, contains, …:
	// four steps down with the keyboard.
	for range 4 {
		s.run("next operator", keys(nth(2)+" select.op", kb.ArrowDown))
	}
	if op := s.attr(nth(2)+" select.op", "title"); op == "" {
		t.Fatalf("the operator has no hint")
	}
	long := strings.Repeat("x", 101)
	s.run("type a too long value", keys(nth(2)+" .val", long))
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		msg := s.text(nth(2) + " > .node-error")
		return strings.Contains(msg, "100 characters"), "the second condition shows " + strconv.Quote(msg)
	})
	if msg := s.text(nth(1) + " > .node-error"); msg != "" {
		t.Fatalf("the first condition shows an error too: %q", msg)
	}
	if got := s.attr(`#preview-count`, "data-state"); got != "error" {
		t.Fatalf("preview state %q, want error", got)
	}

	// Deleting a referenced segment names who references it, and keeps it.
	row := func(id string) string { return fmt.Sprintf(`#segments tr[data-id=%q]`, id) }
	s.run("try to delete A", click(`#nav-segments`), visible(row(a.ID)),
		click(row(a.ID)+" .delete"), click(row(a.ID)+" .delete"))
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		msg := s.text(row(a.ID) + " .row-error")
		return strings.Contains(msg, b.ID) || strings.Contains(msg, "引用 B"), "A's row shows " + strconv.Quote(msg)
	})
	if st := api.do(http.MethodGet, "/v1/segments/"+a.ID, nil, nil); st != 200 {
		t.Fatalf("segment A after the refused delete: HTTP %d", st)
	}

	// An OR group of a condition, an aggregate over paid orders and an
	// event, saved as a tag rule.
	s.run("a new audience", click(`#nav-builder`), visible(`#root`), click(`#root > .group-actions > .add-group`))
	g := nth(1)
	gc := func(i int) string { return fmt.Sprintf("%s > .children > .node:nth-child(%d)", g, i) }
	s.pick(gc(1)+" .field-pick input", "city", "city")
	s.pick(gc(1)+" .value-pick input", "上海", "上海")
	s.run("add an aggregate", click(g+" > .group-actions > .add-agg"), keys(gc(2)+" > .node-row input.val", "1000"),
		click(gc(2)+" > .group-actions > .add-cond"))
	s.pick(gc(2)+" > .children > .node:nth-child(1) .field-pick input", "orders.status", "orders.status")
	s.pick(gc(2)+" > .children > .node:nth-child(1) .value-pick input", "paid", "paid")
	s.run("add an event", click(g+" > .group-actions > .add-event"))
	s.pick(gc(3)+" .event-name input", "view_pro", "view_product")
	rule := jsonOf(t, `{"all":[{"any":[{"field":"city","op":"eq","value":"上海"},
	  {"aggregate":{"path":"orders","fn":"sum","field":"orders.total_amount","where":{"all":[{"field":"orders.status","op":"eq","value":"paid"}]}},"op":"gt","value":1000},
	  {"event":"view_product","within":"7d","op":"gte","value":1}]}]}`)
	if count, want := s.previewSettles(rule), api.count(rule); count != fmt.Sprint(want) || want == 0 {
		t.Fatalf("the preview shows %s customers, the API counts %d", count, want)
	}
	s.run("save as a tag rule", keys(`#save-name`, "shanghai_or_big"), click(`#save-tag`), visible(`#tags tr[data-name="shanghai_or_big"]`))
	var tag struct{ Filter any }
	if st := api.do(http.MethodGet, "/v1/tags/shanghai_or_big", nil, &tag); st != 200 || !reflect.DeepEqual(tag.Filter, rule) {
		t.Fatalf("tag rule: HTTP %d, filter %v", st, tag.Filter)
	}

	// A background export of B: its progress reaches done, and its file
	// holds the API's rows.
	s.run("export B in the background", click(`#nav-segments`), visible(row(b.ID)), click(row(b.ID)+" .export-job"),
		visible(`#exports tr[data-status]`))
	// The job waits for the runner's next poll, which a loaded machine
	// delays: a minute, as the API's own job tests allow.
	harness.Eventually(t, time.Minute, func() (bool, string) {
		st := s.js(`document.querySelector('#exports tr[data-status]').dataset.status`)
		return st == "done", "the job is " + st
	})
	s.run("download it", click(`#exports tr[data-status="done"] button`))
	var guid string
	select {
	case guid = <-s.downloads:
	case <-time.After(20 * time.Second):
		t.Fatal("the export job's download never finished")
	}
	got, err := os.ReadFile(filepath.Join(s.dir, guid))
	if err != nil {
		t.Fatal(err)
	}
	var ref []byte
	api.do(http.MethodGet, "/v1/segments/"+b.ID+"/export?format=csv", nil, &ref)
	n := api.count(map[string]any{"segment": b.ID})
	// The tag rule saved above is still tagging customers (their tags
	// and updated_at change), so the rows are compared by header and
	// customer id.
	if rows, refRows := column0(csvRows(t, got)), column0(csvRows(t, ref)); n == 0 || len(rows) != int(n)+1 || !reflect.DeepEqual(rows, refRows) {
		t.Fatalf("the job's file has %d rows, the API's export %d, for %d members: %v vs %v", len(rows), len(refRows), n, rows, refRows)
	}
	s.pageErrors()
}

func TestAMarketerSeesEveryPhoneOfThePreviewSampleMasked(t *testing.T) {
	chromium(t)
	w := newWorld(t, 60)
	admin := &client{t: t, base: w.srv, key: harness.AdminKey(t, w.cfg)}
	phones, _ := clearPhones(t, admin)
	key, err := harness.MakeKey(w.cfg, "console-marketer", "marketer")
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, w.srv, &client{t: t, base: w.srv, key: key})
	s.login()
	s.run("the preview's sample", visible(`#preview-count[data-state="ready"]`), visible(`#preview-sample td`))
	noClearPhone(t, "the marketer's sample", s.text(`#preview-sample`), phones)
}

// clearPhones are the phones of up to 100 customers as the admin sees
// them, in clear, and the id of the first customer with one.
func clearPhones(t *testing.T, admin *client) (phones []string, first string) {
	t.Helper()
	var res struct {
		Customers []struct {
			ID    string `json:"customer_id"`
			Phone any    `json:"phone"`
		} `json:"customers"`
	}
	admin.do(http.MethodPost, "/v1/customers/search", map[string]any{"filter": map[string]any{"all": []any{}}, "size": 100}, &res)
	for _, c := range res.Customers {
		if p, ok := c.Phone.(string); ok && p != "" {
			phones = append(phones, p)
			if first == "" {
				first = c.ID
			}
		}
	}
	if len(phones) == 0 {
		t.Fatalf("the admin's search shows no phones: %+v", res)
	}
	return phones, first
}

// noClearPhone fails unless text shows a masked phone and none of phones
// in clear (with or without the country code).
func noClearPhone(t *testing.T, what, text string, phones []string) {
	t.Helper()
	if !strings.Contains(text, "****") {
		t.Errorf("%s shows no masked phone: %q", what, text)
	}
	for _, p := range phones {
		if strings.Contains(text, p) || strings.Contains(text, strings.TrimPrefix(p, "+86")) {
			t.Errorf("%s shows the phone %s in clear", what, p)
		}
	}
}
