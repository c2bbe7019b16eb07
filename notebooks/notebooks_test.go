package notebooks_test

import (
	"bytes"
	gocontext "context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The notebooks' Go code is checked by compiling it, never by running it (no training here): each notebook
// becomes one Go package, built the way GoNB builds a cell, and `go build` + `go vet` type-check it against the
// current nowt API. Errors are reported at "<notebook> [cell N]:<line in cell>:<column>" thanks to //line
// directives.

// notebook is the part of the Jupyter (nbformat 4) JSON the checks read.
type notebook struct {
	NBFormat int `json:"nbformat"`
	Metadata struct {
		KernelSpec struct {
			Name     string `json:"name"`
			Language string `json:"language"`
		} `json:"kernelspec"`
	} `json:"metadata"`
	Cells []nbCell `json:"cells"`
}

type nbCell struct {
	CellType       string            `json:"cell_type"`
	Source         nbSource          `json:"source"`
	Outputs        []json.RawMessage `json:"outputs"`
	ExecutionCount *int              `json:"execution_count"`
}

// nbSource is a cell's source: nbformat allows a string or a list of lines.
type nbSource string

func (s *nbSource) UnmarshalJSON(data []byte) error {
	var lines []string
	if err := json.Unmarshal(data, &lines); err == nil {
		*s = nbSource(strings.Join(lines, ""))
		return nil
	}
	var str string
	if err := json.Unmarshal(data, &str); err != nil {
		return fmt.Errorf("cell source is neither a string nor a list of strings: %w", err)
	}
	*s = nbSource(str)
	return nil
}

func readNotebook(path string) (*notebook, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var nb notebook
	if err := json.Unmarshal(data, &nb); err != nil {
		return nil, fmt.Errorf("%s: not a Jupyter notebook: %w", path, err)
	}
	return &nb, nil
}

// cellMagics are GoNB cell magics whose cell is not Go code.
var cellMagics = []string{"%%writefile", "%%script", "%%bash", "%%sh"}

// decl is one top-level declaration of a cell, as text with the //line directive that maps it back.
type decl struct {
	key  string
	text string
}

// program accumulates a notebook's cells into one Go file, with GoNB's semantics: declarations are
// remembered across cells (a later one of the same name replaces an earlier one), imports are merged, and the
// code after a `%%` (or `%main`) line becomes the body of a main function, here one per cell (main_cellN).
type program struct {
	name    string // the notebook's path, used in the //line directives.
	imports []decl
	decls   []decl
	hasMain bool
	errs    []string
}

// position returns the //line (or /*line*/) position text of a line in a cell.
func (p *program) position(cell, line, col int) string {
	return fmt.Sprintf("%s [cell %d]:%d:%d", p.name, cell, line, col)
}

func (p *program) add(list *[]decl, d decl) {
	if !strings.HasPrefix(d.key, "_") {
		for i := range *list {
			if (*list)[i].key == d.key {
				(*list)[i] = d
				return
			}
		}
	}
	*list = append(*list, d)
}

// trimGoNBPrefix removes the "//gonb:" prefix GoNB accepts before special commands.
func trimGoNBPrefix(line string) string { return strings.TrimPrefix(line, "//gonb:") }

// addCell adds code cell number cellNum (1-based, counting all cells) of the notebook.
func (p *program) addCell(cellNum int, src string) {
	lines := strings.Split(src, "\n")
	first := strings.TrimSpace(trimGoNBPrefix(lines[0]))
	for _, magic := range cellMagics {
		if first == magic || strings.HasPrefix(first, magic+" ") {
			return // Not Go.
		}
	}
	// Special commands (`!...`, `%...`) are blanked, keeping line numbers; so are `package` lines, which GoNB
	// drops. A `%%`/`%main`/`%exec` line splits declarations (before) from main's body (after).
	mainLine, execFn := -1, ""
	continued := false
	for i, line := range lines {
		trimmed := trimGoNBPrefix(line)
		special := continued || strings.HasPrefix(trimmed, "%") || strings.HasPrefix(trimmed, "!")
		continued = special && strings.HasSuffix(strings.TrimRight(trimmed, " \t\r"), `\`)
		switch {
		case !continued && mainLine < 0 && (strings.HasPrefix(trimmed, "%%") || strings.HasPrefix(trimmed, "%main")):
			mainLine = i
			lines[i] = ""
		case !continued && mainLine < 0 && strings.HasPrefix(trimmed, "%exec"):
			if fields := strings.Fields(trimmed); len(fields) > 1 {
				execFn = fields[1]
			}
			lines[i] = ""
		case special, strings.HasPrefix(line, "package "):
			lines[i] = ""
		}
	}
	top := lines
	if mainLine >= 0 {
		top = lines[:mainLine]
	}
	p.addDecls(cellNum, strings.Join(top, "\n"))
	switch {
	case mainLine >= 0:
		p.hasMain = true
		body := strings.Join(lines[mainLine+1:], "\n")
		p.add(&p.decls, decl{key: fmt.Sprintf("main_cell%d", cellNum), text: fmt.Sprintf(
			"func main_cell%d() {\n\tflag.Parse()\n/*line %s*/%s\n}", cellNum, p.position(cellNum, mainLine+2, 1), body)})
	case execFn != "":
		p.hasMain = true
		p.add(&p.decls, decl{key: fmt.Sprintf("main_cell%d", cellNum), text: fmt.Sprintf(
			"func main_cell%d() {\n\tflag.Parse()\n\t%s()\n}", cellNum, execFn)})
	}
}

// addDecls parses the declarations part of a cell and records its imports and declarations.
func (p *program) addDecls(cellNum int, code string) {
	if strings.TrimSpace(code) == "" {
		return
	}
	const header = "package nbcheck\n" // One line: cell line L is line L+1 of the parsed source.
	src := header + code
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "cell.go", src, parser.SkipObjectResolution)
	if err != nil {
		if list, ok := err.(scanner.ErrorList); ok {
			for _, e := range list {
				p.errs = append(p.errs, fmt.Sprintf("%s: %s", p.position(cellNum, e.Pos.Line-1, e.Pos.Column), e.Msg))
			}
		} else {
			p.errs = append(p.errs, fmt.Sprintf("%s [cell %d]: %v", p.name, cellNum, err))
		}
		return
	}
	// at returns the /*line*/ directive for pos followed by the source from pos to end.
	at := func(pos, end token.Pos) string {
		position := fset.Position(pos)
		return fmt.Sprintf("/*line %s*/%s", p.position(cellNum, position.Line-1, position.Column),
			src[position.Offset:fset.Position(end).Offset])
	}
	for _, d := range file.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			key := d.Name.Name
			if d.Recv != nil && len(d.Recv.List) > 0 {
				key = receiverName(d.Recv.List[0].Type) + "." + key
			}
			text := at(d.Pos(), d.End())
			if d.Recv == nil && strings.HasPrefix(d.Name.Name, "init_") {
				// GoNB turns init_* functions into init(); pad to keep the columns.
				text = at(d.Pos(), d.Name.Pos()) + "init" + strings.Repeat(" ", len(d.Name.Name)-len("init")) +
					src[fset.Position(d.Name.End()).Offset:fset.Position(d.End()).Offset]
			}
			p.add(&p.decls, decl{key: key, text: text})
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch spec := spec.(type) {
				case *ast.ImportSpec:
					key := spec.Path.Value
					if spec.Name != nil && spec.Name.Name != "_" {
						key = spec.Name.Name
					}
					p.add(&p.imports, decl{key: key, text: at(spec.Pos(), spec.End())})
				case *ast.TypeSpec:
					p.add(&p.decls, decl{key: spec.Name.Name, text: "type " + at(spec.Pos(), spec.End())})
				case *ast.ValueSpec:
					if d.Tok == token.CONST {
						continue // Handled below: a const block stays whole (iota).
					}
					var names []string
					for _, n := range spec.Names {
						names = append(names, n.Name)
					}
					p.add(&p.decls, decl{key: strings.Join(names, ","), text: "var " + at(spec.Pos(), spec.End())})
				}
			}
			if d.Tok == token.CONST {
				var names []string
				for _, spec := range d.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						names = append(names, n.Name)
					}
				}
				p.add(&p.decls, decl{key: strings.Join(names, ","), text: at(d.Pos(), d.End())})
			}
		}
	}
}

func receiverName(expr ast.Expr) string {
	switch e := expr.(type) {
	case *ast.StarExpr:
		return receiverName(e.X)
	case *ast.IndexExpr:
		return receiverName(e.X)
	case *ast.IndexListExpr:
		return receiverName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return fmt.Sprintf("%T", expr)
}

// source returns the Go file of the program, package nbcheck (not main: building it links nothing).
func (p *program) source() string {
	var b strings.Builder
	b.WriteString("// Code generated by notebooks_test.go from " + filepath.Base(p.name) + "; DO NOT EDIT.\n\npackage nbcheck\n\nimport (\n")
	hasFlag := false
	for _, imp := range p.imports {
		if strings.HasSuffix(imp.text, `"flag"`) {
			hasFlag = true
		}
		b.WriteString(imp.text + "\n")
	}
	if p.hasMain && !hasFlag {
		b.WriteString("\t\"flag\" // GoNB's main calls flag.Parse.\n")
	}
	b.WriteString(")\n")
	for _, d := range p.decls {
		b.WriteString("\n" + d.text + "\n")
	}
	return b.String()
}

// convert turns a notebook's code cells into a Go program as GoNB would run them. name is used in positions.
func convert(name string, nb *notebook) *program {
	p := &program{name: name}
	for i, c := range nb.Cells {
		if c.CellType == "code" {
			p.addCell(i+1, string(c.Source))
		}
	}
	return p
}

// checkDir creates notebooks/.check-<pid>-* (inside the module, so that the programs build against this
// checkout of nowt) and removes it at the end of the test.
func checkDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(".", fmt.Sprintf(".check-%d-", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(abs) })
	return abs
}

// goCmd runs the go command in dir with a time limit and returns its combined output.
func goCmd(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := gocontext.WithTimeout(gocontext.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("go %s: timed out after 4 minutes", strings.Join(args, " "))
	}
	return out.String(), err
}

// writeModFile writes a copy of the module's go.mod and go.sum into dir as check.mod and check.sum, for
// `-modfile`: the notebooks also import GoNB's packages (gonbui, plotly), which nowt does not require. The
// copy of go.sum is completed with GoMLX's go.sum, which holds the checksums of GoNB and go-plotly (GoMLX
// requires them), so nothing needs the checksum database. The module's own go.mod and go.sum are not touched.
func writeModFile(t *testing.T, moduleRoot, dir string) string {
	t.Helper()
	mod, err := os.ReadFile(filepath.Join(moduleRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(moduleRoot, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := goCmd(t, moduleRoot, nil, "list", "-m", "-f", "{{.Dir}}", "github.com/gomlx/gomlx"); err == nil {
		if extra, err := os.ReadFile(filepath.Join(strings.TrimSpace(out), "go.sum")); err == nil {
			sum = append(append(sum, '\n'), extra...)
		}
	}
	modFile := filepath.Join(dir, "check.mod")
	if err := os.WriteFile(modFile, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "check.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	return modFile
}

// TestNotebooks checks every notebook's format and compiles its Go code against the current API.
func TestNotebooks(t *testing.T) {
	all, err := filepath.Glob("*.ipynb")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, path := range all {
		if !strings.HasPrefix(path, ".") { // Hidden copies (e.g. .check-*.ipynb) are not the notebooks.
			paths = append(paths, path)
		}
	}
	if len(paths) < 2 {
		t.Fatalf("expected the notebooks tutorial.ipynb and new-rule.ipynb in notebooks/, found %v", paths)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not in PATH")
	}
	out, err := goCmd(t, ".", nil, "env", "GOMOD")
	moduleRoot := filepath.Dir(strings.TrimSpace(out))
	if err != nil || strings.TrimSpace(out) == "" || strings.TrimSpace(out) == os.DevNull {
		t.Fatalf("cannot find the module's go.mod (go env GOMOD: %q, %v)", out, err)
	}
	dir := checkDir(t)

	var pkgs []string
	for _, path := range paths {
		nb, err := readNotebook(path)
		if err != nil {
			t.Error(err)
			continue
		}
		if nb.NBFormat != 4 || nb.Metadata.KernelSpec.Name != "gonb" || nb.Metadata.KernelSpec.Language != "go" {
			t.Errorf("%s: want an nbformat 4 notebook with kernelspec name \"gonb\" and language \"go\", got nbformat %d, kernel %q, language %q",
				path, nb.NBFormat, nb.Metadata.KernelSpec.Name, nb.Metadata.KernelSpec.Language)
		}
		for i, c := range nb.Cells {
			if c.CellType == "code" && (len(c.Outputs) > 0 || c.ExecutionCount != nil) {
				t.Errorf("%s [cell %d]: has outputs; commit notebooks with cleared outputs "+
					"(jupyter nbconvert --clear-output --inplace notebooks/*.ipynb)", path, i+1)
			}
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			t.Fatal(err)
		}
		p := convert(abs, nb)
		for _, e := range p.errs {
			t.Errorf("syntax error in notebook code: %s", e)
		}
		if !p.hasMain {
			t.Errorf("%s: no cell runs anything (no %%%% cell)", path)
		}
		name := strings.TrimSuffix(filepath.Base(path), ".ipynb")
		pkgDir := filepath.Join(dir, regexp.MustCompile(`[^A-Za-z0-9_]`).ReplaceAllString(name, "_"))
		if err := os.MkdirAll(pkgDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkgDir, "notebook.go"), []byte(p.source()), 0o644); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, "./"+filepath.Join(filepath.Base(dir), filepath.Base(pkgDir)))
	}
	if t.Failed() {
		return
	}

	modFile := writeModFile(t, moduleRoot, dir)
	// GOPROXY=off: the check never downloads; GoNB's and go-plotly's modules must be in the module cache.
	env := []string{"GOPROXY=off", "GOWORK=off"}
	flags := []string{"-modfile=" + modFile, "-mod=mod"}
	start := time.Now()
	out, err = goCmd(t, ".", env, append(append([]string{"build"}, flags...), pkgs...)...)
	if err != nil {
		if strings.Contains(out, "module lookup disabled") {
			t.Skipf("the notebooks import modules missing from the module cache; fetch them with\n"+
				"  go mod download github.com/janpfeifer/gonb@v0.11.1 github.com/MetalBlueberry/go-plotly@v0.7.0 github.com/gofrs/uuid@v4.4.0+incompatible\n"+
				"go build said:\n%s", out)
		}
		t.Fatalf("the notebooks' Go code does not compile against the current API (positions are <notebook> [cell N]:<line in cell>:<column>, cells counted from 1 including markdown):\n%s",
			out)
	}
	t.Logf("go build of the notebooks' code: %s", time.Since(start).Round(time.Millisecond))
	out, err = goCmd(t, ".", env, append(append([]string{"vet"}, flags...), pkgs...)...)
	if err != nil {
		t.Fatalf("go vet of the notebooks' Go code:\n%s", out)
	}
}

// TestConvert checks the GoNB-to-Go conversion on a small notebook: special commands dropped, declarations
// remembered and replaced, `%%` cells turned into functions, init_* renamed, and compile errors reported at the
// notebook's cell and line.
func TestConvert(t *testing.T) {
	cell := func(kind, src string) nbCell { return nbCell{CellType: kind, Source: nbSource(src)} }
	nb := &notebook{Cells: []nbCell{
		cell("markdown", "# title"),
		cell("code", "!*go mod edit -replace x=y \\\n  -require z\n%env A 1\nimport \"fmt\"\n\nfunc f() int { return 1 }"),
		cell("code", "%%writefile x.txt\nnot go"),
		cell("code", "import (\n\t\"strings\"\n)\n\n// f again: replaces the first.\nfunc f() int { return len(strings.Fields(\"a b\")) }\n\nvar x, y = 1, 2\n\nconst (\n\ta = iota\n\tb\n)\n\ntype T struct{}\n\nfunc (T) M() {}\nfunc init_setup() { _ = x }"),
		cell("code", "%%\nfmt.Println(f(), y, a, b)\nT{}.M()"),
		cell("code", "%% --flag=1\nvar unused int\nfmt.Println(undefinedName)"),
	}}
	p := convert("demo.ipynb", nb)
	if len(p.errs) > 0 {
		t.Fatalf("unexpected syntax errors: %v", p.errs)
	}
	src := p.source()
	for _, want := range []string{
		`/*line demo.ipynb [cell 2]:4:8*/"fmt"`,
		`/*line demo.ipynb [cell 4]:2:2*/"strings"`,
		"func init      () { _ = x }",
		"func main_cell5() {\n\tflag.Parse()\n/*line demo.ipynb [cell 5]:2:1*/fmt.Println(f(), y, a, b)",
		"\t\"flag\"",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("generated source lacks %q:\n%s", want, src)
		}
	}
	for _, unwanted := range []string{"return 1", "go mod edit", "-require", "%env", "not go", "--flag"} {
		if strings.Contains(src, unwanted) {
			t.Errorf("generated source contains %q:\n%s", unwanted, src)
		}
	}

	// A syntax error in a declarations cell is reported at its cell and line.
	bad := convert("bad.ipynb", &notebook{Cells: []nbCell{cell("code", "\nfunc g( {")}})
	if len(bad.errs) == 0 || !strings.HasPrefix(bad.errs[0], "bad.ipynb [cell 1]:2:") {
		t.Errorf("syntax error reported as %q, want it at bad.ipynb [cell 1]:2", bad.errs)
	}

	// Compile errors point at the notebook cell and line (the program imports only the standard library).
	dir := checkDir(t)
	pkgDir := filepath.Join(dir, "demo")
	if err := os.MkdirAll(pkgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkgDir, "notebook.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := goCmd(t, dir, []string{"GOPROXY=off", "GOWORK=off"}, "build", "./demo")
	if err == nil {
		t.Fatalf("the demo program has errors but built:\n%s", src)
	}
	for _, want := range []string{"demo.ipynb [cell 6]:2:5: declared and not used: unused", "demo.ipynb [cell 6]:3:13: undefined: undefinedName"} {
		if !strings.Contains(out, want) {
			t.Errorf("go build output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "demo.ipynb [cell") != 2 {
		t.Errorf("want exactly the two errors of cell 6, got:\n%s", out)
	}
}
