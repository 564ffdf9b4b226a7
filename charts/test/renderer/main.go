// crm-render: renders a Helm chart the way Helm 3's engine does, for the chart checks.
//
// Helm's engine is Go text/template + the sprig function library + a handful of Helm functions
// (include, tpl, required, toYaml, fromYaml, toJson, fromJson, lookup, ...), with values coalesced
// from the chart's values.yaml and the user's files, and .Release, .Chart, .Capabilities, .Files,
// .Template in scope. This program does the same with the same libraries (Debian packages
// golang-github-masterminds-sprig-dev and golang-k8s-sigs-yaml-dev), so what it renders is what
// `helm template` renders for a chart without subcharts (the checks disable them).
//
// Usage: crm-render -chart DIR [-values FILE]... [-release NAME] [-namespace NS] [-kube 1.31.0] [-cluster FILE]
// -cluster: a JSON list of objects that lookup finds, as if they were in the cluster (default: none,
// as `helm template` sees it).
// Output (stdout): JSON {"manifests": {"<chart>/templates/x.yaml": "..."}, "notes": "..."}.
// A template error is printed on stderr with exit code 1, as Helm reports it.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Metadata mirrors helm.sh/helm/v3/pkg/chart.Metadata (what templates see as .Chart).
type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// Files mirrors helm's engine.files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string     { return string(f[name]) }
func (f Files) Glob(pattern string) Files {
	re := globRegexp(pattern)
	out := Files{}
	for name, data := range f {
		if re.MatchString(name) {
			out[name] = data
		}
	}
	return out
}
func (f Files) AsConfig() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}
func (f Files) AsSecrets() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = base64.StdEncoding.EncodeToString(v)
	}
	return toYAML(m)
}
func (f Files) Lines(name string) []string {
	if f[name] == nil {
		return []string{}
	}
	return strings.Split(string(f[name]), "\n")
}

// globRegexp: gobwas/glob semantics with '/' as separator (what helm uses): * and ? stay inside
// a path segment, ** crosses segments, {a,b} alternates, [..] classes.
func globRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				b.WriteString(".*")
				i++
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '{':
			b.WriteString("(?:")
		case '}':
			b.WriteString(")")
		case ',':
			b.WriteString("|")
		case '[', ']':
			b.WriteByte(c)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// VersionSet mirrors chartutil.VersionSet.
type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k KubeVersion) String() string     { return k.Version }
func (k KubeVersion) GitVersion() string { return k.Version }

type HelmVersion struct {
	Version      string
	GitCommit    string
	GitTreeState string
	GoVersion    string
}

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion HelmVersion
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(str string) map[string]interface{} {
	m := make(map[string]interface{})
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// coalesce merges src (user values) over dst (chart defaults), as chartutil.CoalesceTables:
// maps merge key by key, anything else replaces, and a null removes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	if dst == nil {
		dst = map[string]interface{}{}
	}
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := sv.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = coalesce(dm, sm)
				continue
			}
		}
		dst[k] = sv
	}
	return dst
}

// removeNulls drops null leaves from the chart's own defaults too (helm does on coalesce).
func removeNulls(m map[string]interface{}) {
	for k, v := range m {
		if v == nil {
			delete(m, k)
		} else if mm, ok := v.(map[string]interface{}); ok {
			removeNulls(mm)
		}
	}
}

func readValues(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	vals := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if vals == nil {
		vals = map[string]interface{}{}
	}
	return vals, nil
}

// helmignore: the subset of .helmignore syntax charts use (globs on the path or the base name,
// a trailing / for directories, ! to negate).
type ignoreRule struct {
	re     *regexp.Regexp
	dir    bool
	negate bool
}

func loadIgnore(dir string) []ignoreRule {
	data, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return nil
	}
	var rules []ignoreRule
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.negate = true
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dir = true
			line = strings.TrimSuffix(line, "/")
		}
		pat := strings.ReplaceAll(regexp.QuoteMeta(line), `\*`, `[^/]*`)
		pat = strings.ReplaceAll(pat, `\?`, `[^/]`)
		r.re = regexp.MustCompile("^" + pat + "$")
		rules = append(rules, r)
	}
	return rules
}

func ignored(rules []ignoreRule, rel string, isDir bool) bool {
	out := false
	for _, r := range rules {
		if r.dir && !isDir {
			continue
		}
		if r.re.MatchString(rel) || r.re.MatchString(path.Base(rel)) {
			out = !r.negate
		}
	}
	return out
}

// walk lists the chart's files, following symbolic links (as helm's loader does).
func walk(root, rel string, rules []ignoreRule, visit func(rel string, data []byte) error) error {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	for _, e := range entries {
		r := path.Join(rel, e.Name())
		full := filepath.Join(root, r)
		st, err := os.Stat(full) // follows links
		if err != nil {
			return err
		}
		if ignored(rules, r, st.IsDir()) {
			continue
		}
		if st.IsDir() {
			if err := walk(root, r, rules, visit); err != nil {
				return err
			}
			continue
		}
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return err
		}
		if err := visit(r, data); err != nil {
			return err
		}
	}
	return nil
}

// clusterObjects: what lookup finds (-cluster).
var clusterObjects []map[string]interface{}

// lookup is Helm's: one object by apiVersion, kind, namespace and name, or {"items": [...]} for
// an empty name; an empty map when nothing matches.
func lookup(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
	var items []interface{}
	for _, o := range clusterObjects {
		meta, _ := o["metadata"].(map[string]interface{})
		if o["apiVersion"] != apiVersion || o["kind"] != kind || (namespace != "" && meta["namespace"] != namespace) {
			continue
		}
		if name == "" {
			items = append(items, o)
		} else if meta["name"] == name {
			return o, nil
		}
	}
	if name == "" {
		return map[string]interface{}{"items": items}, nil
	}
	return map[string]interface{}{}, nil
}

func main() {
	var valueFiles multiFlag
	cluster := flag.String("cluster", "", "JSON list of objects lookup finds")
	chartDir := flag.String("chart", "", "chart directory")
	release := flag.String("release", "crm", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kube := flag.String("kube", "1.31.0", "Kubernetes version for .Capabilities")
	isUpgrade := flag.Bool("upgrade", false, "render as an upgrade")
	flag.Var(&valueFiles, "values", "values file (repeatable; later wins)")
	flag.Parse()
	if *chartDir == "" {
		fmt.Fprintln(os.Stderr, "usage: crm-render -chart DIR [-values FILE]...")
		os.Exit(2)
	}
	if *cluster != "" {
		data, err := os.ReadFile(*cluster)
		if err == nil {
			err = json.Unmarshal(data, &clusterObjects)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "Error: -cluster:", err)
			os.Exit(2)
		}
	}
	if err := run(*chartDir, valueFiles, *release, *namespace, *kube, *isUpgrade); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(chartDir string, valueFiles []string, release, namespace, kube string, isUpgrade bool) error {
	metaBytes, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	var meta Metadata
	if err := yaml.Unmarshal(metaBytes, &meta); err != nil {
		return fmt.Errorf("Chart.yaml: %w", err)
	}
	if meta.Name == "" || meta.Version == "" {
		return errors.New("Chart.yaml: name and version are required")
	}

	rules := loadIgnore(chartDir)
	files := Files{}
	templates := map[string]string{}
	err = walk(chartDir, "", rules, func(rel string, data []byte) error {
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[path.Join(meta.Name, rel)] = string(data)
		case rel == "Chart.yaml", rel == "values.yaml", rel == "values.schema.json", rel == "Chart.lock",
			rel == "requirements.yaml", rel == "requirements.lock", strings.HasPrefix(rel, "charts/"):
		default:
			files[rel] = data
		}
		return nil
	})
	if err != nil {
		return err
	}

	vals, err := readValues(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range valueFiles {
		user, err := readValues(f)
		if err != nil {
			return err
		}
		vals = coalesce(vals, user)
	}
	removeNulls(vals)
	if _, ok := vals["global"]; !ok {
		vals["global"] = map[string]interface{}{}
	}

	parts := strings.SplitN(strings.TrimPrefix(kube, "v"), ".", 3)
	caps := Capabilities{
		KubeVersion: KubeVersion{Version: "v" + strings.TrimPrefix(kube, "v"), Major: parts[0], Minor: parts[1]},
		APIVersions: VersionSet{"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1",
			"rbac.authorization.k8s.io/v1", "cert-manager.io/v1"},
		HelmVersion: HelmVersion{Version: "v3.16.0"},
	}
	top := map[string]interface{}{
		"Values": vals,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "IsUpgrade": isUpgrade, "IsInstall": !isUpgrade,
			"Revision": 1, "Service": "Helm",
		},
		"Chart":        &meta,
		"Capabilities": &caps,
		"Files":        files,
	}

	t := template.New("gotpl")
	t.Option("missingkey=zero")
	includedNames := map[string]int{}
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = toYAML
	funcs["mustToYaml"] = toYAML
	funcs["fromYaml"] = fromYAML
	funcs["fromYamlArray"] = fromYAMLArray
	funcs["toJson"] = toJSON
	funcs["mustToJson"] = toJSON
	funcs["fromJson"] = fromJSON
	funcs["fromJsonArray"] = fromJSONArray
	funcs["toToml"] = func(interface{}) string { return "" }
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		if v, ok := includedNames[name]; ok && v > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includedNames[name]++
		err := t.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
	funcs["tpl"] = func(tpl string, vals map[string]interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		clone.Option("missingkey=zero")
		name := "tpl"
		if tm, ok := vals["Template"].(map[string]interface{}); ok {
			if n, ok := tm["Name"].(string); ok {
				name = n
			}
		}
		if _, err := clone.New(name).Parse(tpl); err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", tpl, err)
		}
		var buf bytes.Buffer
		if err := clone.ExecuteTemplate(&buf, name, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", tpl, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(warn)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(warn)
		}
		return val, nil
	}
	funcs["lookup"] = lookup
	t.Funcs(funcs)

	names := make([]string, 0, len(templates))
	for name := range templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := t.New(name).Parse(templates[name]); err != nil {
			return err
		}
	}

	manifests := map[string]string{}
	notes := ""
	for _, name := range names {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		ctx := map[string]interface{}{}
		for k, v := range top {
			ctx[k] = v
		}
		ctx["Template"] = map[string]interface{}{"Name": name, "BasePath": path.Join(meta.Name, "templates")}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, ctx); err != nil {
			return err
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes = out
			continue
		}
		manifests[name] = out
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(map[string]interface{}{"manifests": manifests, "notes": notes})
}

