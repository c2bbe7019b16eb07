package input

import (
	"errors"
	"fmt"
	"sync"
)

// Check reads and decodes every example of one split of a dataset, as a training run would (without
// augmentation), and calls bad, in example order, with the error of each unreadable one (corrupt, empty or of
// an unsupported format; the error names the file). It returns how many examples it checked and how many were
// bad; err is set only when the split cannot be opened at all. opts.Workers applies, and opts.Limit checks only
// the first examples in file order.
func Check(name, path, split string, opts Options, bad func(err error)) (checked, failed int, err error) {
	open, ok := openers[name]
	if !ok {
		return 0, 0, fmt.Errorf("input: unknown dataset %q, valid names are: %s", name, joinNames())
	}
	src, err := open(path, split, opts)
	if err != nil {
		return 0, 0, fmt.Errorf("input: opening %s (split %q): %w", name, split, err)
	}
	n := src.n
	if opts.Limit > 0 && opts.Limit < n {
		n = opts.Limit
	}
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range opts.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]float32, src.h*src.w*src.c)
			for i := range next {
				errs[i] = checkOne(src, i, buf)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			failed++
			if bad != nil {
				bad(e)
			}
		}
	}
	return n, failed, nil
}

// checkOne loads example i, turning a panic of a decoder into an error.
func checkOne(src *source, i int, buf []float32) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("example %d: %w: internal panic while decoding: %v", i, errCorrupt, r)
		}
	}()
	if err := src.load(i, buf, nil); err != nil {
		if !errors.Is(err, errCorrupt) {
			return fmt.Errorf("example %d: %w", i, err)
		}
		return err
	}
	return nil
}

func joinNames() string {
	s := ""
	for i, n := range Names() {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}
