// Package configs embeds the configuration crvault ships with: the Casbin
// model and role policy, and China's working-day calendars (holiday-cn, MIT).
package configs

import "embed"

// Casbin holds casbin/model.conf and casbin/policy.csv.
//
//go:embed casbin/model.conf casbin/policy.csv
var Casbin embed.FS

// Calendars holds calendars/*.json (one file per year, holiday-cn format) and its LICENSE.
//
//go:embed calendars/*.json calendars/LICENSE
var Calendars embed.FS
