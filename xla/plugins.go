package xla

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// PluginPathsEnv is the environment variable holding a ":"-separated list of folders to search for PJRT plugins.
// When it is set (even to ""), only those folders are searched, as in go-xla.
const PluginPathsEnv = "PJRT_PLUGIN_LIBRARY_PATH"

// Plugin is a PJRT plugin file found on disk. It is only found, never loaded.
type Plugin struct {
	// Name of the plugin as go-xla names it: "cpu", "cuda", "tpu", ... (from pjrt_c_api_<name>_plugin.so).
	Name string
	// Path is the full path of the plugin file.
	Path string
}

// pluginFilePatterns are the glob patterns go-xla (pkg/pjrt/dynamiclib_base.go) uses to find plugin files.
var pluginFilePatterns = []string{
	"pjrt-plugin-*.so", "pjrt_plugin_*.so", "pjrt_c_api_*_plugin.so",
	"pjrt-plugin-*.dylib", "pjrt_plugin_*.dylib", "pjrt_c_api_*_plugin.dylib",
}

// rePluginName extracts the plugin name from a plugin path, as go-xla does.
var rePluginName = []*regexp.Regexp{
	regexp.MustCompile(`^.*[/\\]pjrt_c_api_(.+)_plugin\.(so|dylib|dll)$`),
	regexp.MustCompile(`^.*[/\\]pjrt[-_]plugin[-_](.+)\.(so|dylib|dll)$`),
}

// pluginNameFromPath returns the plugin name for a plugin file path, or "" if the path is not a plugin file name.
func pluginNameFromPath(p string) string {
	for _, re := range rePluginName {
		if m := re.FindStringSubmatch(p); m != nil {
			return m[1]
		}
	}
	return ""
}

// isCPUPlugin reports whether the plugin file at p is XLA's CPU plugin, by its file name: go-xla's
// pjrt_c_api_cpu_plugin.so and its versioned copies (pjrt_c_api_cpu_v0.83.3_plugin.so), and the wheels' own
// names (xla_cpu_pjrt.so). The name is all there is to go by before loading, and XLA reads its flags when the
// first client is created.
func isCPUPlugin(p string) bool {
	return strings.Contains(strings.ToLower(filepath.Base(p)), "cpu")
}

// isCUDAPlugin reports whether the plugin file at p is a CUDA plugin, by its file name.
func isCUDAPlugin(p string) bool {
	return strings.Contains(strings.ToLower(filepath.Base(p)), "cuda")
}

// isTPUPlugin reports whether the plugin file at p is a TPU plugin, by its file name: go-xla's
// pjrt_c_api_tpu_plugin.so (a plugin name holding "tpu") or pip's libtpu.so.
func isTPUPlugin(p string) bool {
	return strings.Contains(strings.ToLower(pluginNameFromPath(p)), "tpu") ||
		strings.HasPrefix(strings.ToLower(filepath.Base(p)), "libtpu")
}

// checkTPUPresent refuses a TPU plugin on a machine without a TPU device (see hasHardware), unless
// $TPU_SKIP_MDS_QUERY is set: libtpu would first ask the Google Cloud metadata server for its TPU topology, one
// key after another with 30 retries each (about 30 s a key; libtpu 0.0.52 on a machine without a TPU had not
// returned after 10 minutes), and a wrong `-backend xla:tpu` would look like a hang. With TPU_SKIP_MDS_QUERY=1 the
// same libtpu fails in 0.3 s ("No jellyfish device found"). Plugins of other kinds pass.
func checkTPUPresent(path string) error {
	if !isTPUPlugin(path) || hasHardware("tpu") || os.Getenv("TPU_SKIP_MDS_QUERY") != "" {
		return nil
	}
	return fmt.Errorf("PJRT plugin %s is a TPU plugin, but this machine has no TPU device (no /dev/accel*, no "+
		"/dev/vfio/<n>): libtpu would query the Google Cloud metadata server for its TPU topology, without an answer "+
		"for over 10 minutes (libtpu 0.0.52). Run on a Cloud TPU VM (nowt devices -backend xla:tpu lists its chips), choose another backend "+
		"(-backend auto), or, where the TPUs are there but not seen, set TPU_SKIP_MDS_QUERY=1 and libtpu's topology "+
		"variables to load it anyway", path)
}

// PluginFileName is the file name go-xla expects for the plugin with the given name,
// e.g. "pjrt_c_api_cuda_plugin.so" for "cuda".
func PluginFileName(name string) string {
	ext := ".so"
	if runtime.GOOS == "darwin" {
		ext = ".dylib"
	}
	return "pjrt_c_api_" + name + "_plugin" + ext
}

// SearchPaths lists the folders searched for PJRT plugins, in order, following go-xla v0.1.4
// (pkg/pjrt/dynamiclib_base.go and dynamiclib_posix.go):
//
//   - If $PJRT_PLUGIN_LIBRARY_PATH is set: its ":"-separated folders, and only those.
//   - Otherwise: ~/.local/lib/go-xla, ~/.local/lib/go-xla/nvidia, ~/.local/lib/gomlx/pjrt, /usr/local/lib/go-xla,
//     /usr/local/lib/go-xla/nvidia, /usr/local/lib/gomlx/pjrt, then the absolute folders in $LD_LIBRARY_PATH and
//     those listed in /etc/ld.so.conf (following its "include" lines).
//
// Unlike go-xla, which reads the environment once at program start, this reads it at every call.
// Duplicates are removed, keeping the first occurrence.
func SearchPaths() []string {
	var paths []string
	if env, found := os.LookupEnv(PluginPathsEnv); found {
		for _, p := range strings.Split(env, ":") {
			if p != "" {
				paths = append(paths, p)
			}
		}
		return dedup(paths)
	}
	if home, err := os.UserHomeDir(); err == nil {
		goXLA := filepath.Join(home, ".local", "lib", "go-xla")
		paths = append(paths, goXLA, filepath.Join(goXLA, "nvidia"), filepath.Join(home, ".local", "lib", "gomlx", "pjrt"))
	}
	paths = append(paths, "/usr/local/lib/go-xla", "/usr/local/lib/go-xla/nvidia", "/usr/local/lib/gomlx/pjrt")
	for _, p := range strings.Split(os.Getenv("LD_LIBRARY_PATH"), ":") {
		if p != "" && filepath.IsAbs(p) {
			paths = append(paths, p)
		}
	}
	if runtime.GOOS == "linux" {
		paths = ldSoConfPaths(paths, "/etc/ld.so.conf", 0)
	}
	return dedup(paths)
}

// ldSoConfPaths appends the folders listed in an ld.so.conf-style file, following "include" lines.
func ldSoConfPaths(paths []string, file string, depth int) []string {
	if depth > 8 {
		return paths
	}
	f, err := os.Open(file)
	if err != nil {
		return paths
	}
	defer func() { _ = f.Close() }()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "include") && len(line) > len("include") &&
			(line[len("include")] == ' ' || line[len("include")] == '\t'):
			pattern := strings.TrimSpace(line[len("include"):])
			if !filepath.IsAbs(pattern) {
				pattern = filepath.Join(filepath.Dir(file), pattern)
			}
			matches, _ := filepath.Glob(pattern)
			for _, m := range matches {
				paths = ldSoConfPaths(paths, m, depth+1)
			}
		default:
			paths = append(paths, line)
		}
	}
	return paths
}

func dedup(paths []string) []string {
	seen := make(map[string]bool, len(paths))
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Plugins lists the PJRT plugins found in SearchPaths, one per name (the first found wins, in search order).
//
// Plugins are only found by file name; they are not loaded (go-xla's own search dlopens each candidate),
// so a broken plugin file is listed here and fails only when a backend is created from it.
func Plugins() []Plugin {
	return findPlugins(SearchPaths())
}

func findPlugins(searchPaths []string) []Plugin {
	var found []Plugin
	seen := make(map[string]bool)
	for _, dir := range searchPaths {
		for _, pattern := range pluginFilePatterns {
			candidates, err := filepath.Glob(filepath.Join(dir, pattern))
			if err != nil {
				continue
			}
			for _, c := range candidates {
				name := pluginNameFromPath(c)
				if name == "" || seen[name] {
					continue
				}
				if info, err := os.Stat(c); err != nil || info.IsDir() {
					continue // Dangling link or folder.
				}
				seen[name] = true
				found = append(found, Plugin{Name: name, Path: c})
			}
		}
	}
	return found
}

// findPlugin returns the plugin with the given name, if found.
func findPlugin(plugins []Plugin, name string) (Plugin, bool) {
	for _, p := range plugins {
		if p.Name == name {
			return p, true
		}
	}
	return Plugin{}, false
}
