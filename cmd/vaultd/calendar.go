package main

import (
	"context"
	"io"
)

func cmdCalendar(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return usageError{cmd + ": not available yet"}
}
