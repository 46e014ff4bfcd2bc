package web

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/crvault/crvault/audit/sqldb"
)

// prefRow is one account's choices in the web application. It holds no
// confidential data: only the language the pages are shown in.
type prefRow struct {
	UserID    string    `gorm:"primaryKey;size:64"`
	Lang      string    `gorm:"size:16;not null"`
	UpdatedAt time.Time `gorm:"not null"`
}

func (prefRow) TableName() string { return "web_preferences" }

var migrations = []sqldb.Step{
	{Version: 1, Name: "web preferences", Up: func(tx *gorm.DB, _ string) error {
		return tx.Migrator().CreateTable(&prefRow{})
	}},
}

// Migrate brings the web application's table to this binary's schema.
func Migrate(ctx context.Context, db *gorm.DB) error {
	return sqldb.Migrate(ctx, db, "web", migrations)
}

// Prefs remembers each account's language.
type Prefs struct{ db *gorm.DB }

// NewPrefs serves preferences from a migrated database.
func NewPrefs(db *gorm.DB) *Prefs { return &Prefs{db: db} }

// Lang is the account's chosen language, or "" when it never chose.
func (p *Prefs) Lang(ctx context.Context, userID string) (string, error) {
	var r prefRow
	err := p.db.WithContext(ctx).Where("user_id = ?", userID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("language of %s: %w", userID, err)
	}
	return r.Lang, nil
}

// SetLang records the account's language.
func (p *Prefs) SetLang(ctx context.Context, userID, lang string) error {
	r := prefRow{UserID: userID, Lang: lang, UpdatedAt: time.Now().UTC()}
	err := p.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "user_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"lang", "updated_at"})}).Create(&r).Error
	if err != nil {
		return fmt.Errorf("set language of %s: %w", userID, err)
	}
	return nil
}
