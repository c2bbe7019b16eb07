package main

import (
	"fmt"
	"io"
)

func runCompare(args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("not implemented yet")
}
