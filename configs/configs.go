// Package configs embeds the configuration crvault ships with: the Casbin
// model and role policy, China's working-day calendars (holiday-cn, MIT) and
// the list of common and breached passwords (zxcvbn, MIT).
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

// Passwords holds passwords/common.txt.gz (one common or breached password a
// line, gzip-compressed) and its LICENSE.
//
//go:embed passwords/common.txt.gz passwords/LICENSE
var Passwords embed.FS
