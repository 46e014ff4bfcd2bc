package main

import (
	"context"
	"io"
)

func cmdCalendar(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return usageError{cmd + ": not available yet"}
}

// startWorkflowJobs starts the background deadline watcher.
func (a *app) startWorkflowJobs(ctx context.Context) {}
