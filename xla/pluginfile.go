package xla

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
)

// checkPluginFile reports a plugin file that is an ELF shared library cut short (an interrupted copy or download,
// a full disk): loading it would map pages past the end of the file, and the first read of one kills the process
// with SIGBUS inside dlopen, before any error can be returned. Files that are not ELF are left to the loader,
// which refuses them with an error of its own.
func checkPluginFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	magic := make([]byte, len(elf.ELFMAG))
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	reinstall := fmt.Sprintf("install it again (nowt setup -plugin %s -force) or copy it whole", pluginNameFromPath(path))
	ef, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("PJRT plugin %s is not a whole shared library (%v, %d bytes): %s", path, err, st.Size(), reinstall)
	}
	for _, p := range ef.Progs {
		if end := p.Off + p.Filesz; end > uint64(st.Size()) {
			return fmt.Errorf("PJRT plugin %s is cut short: %d bytes, where its segments reach byte %d: %s", path,
				st.Size(), end, reinstall)
		}
	}
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOBITS && s.Offset+s.FileSize > uint64(st.Size()) {
			return fmt.Errorf("PJRT plugin %s is cut short: %d bytes, where its section %s reaches byte %d: %s", path,
				st.Size(), s.Name, s.Offset+s.FileSize, reinstall)
		}
	}
	return nil
}
