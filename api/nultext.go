package api

import (
	"reflect"
	"strconv"
	"strings"
)

// nulField finds a string holding a NUL character anywhere in a decoded
// JSON body and returns the member's path ("factors[1].finding").
//
// JSON can carry NUL ("\u0000") in any string, and PostgreSQL can store it
// in no text column: a NUL that reached a query failed the statement, and
// the request answered 500 instead of naming the bad member. The domain
// checks the text it stores (vault.CleanText) but not every member that is
// only looked up (an organisation named in a report, a pseudonym in a
// complaint), so the body is refused whole at the boundary, whichever
// member holds it. Invalid UTF-8 needs no such check: encoding/json reads
// it as U+FFFD.
func nulField(v any) (string, bool) { return nulIn(reflect.ValueOf(v), "") }

func nulIn(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return nulIn(v.Elem(), path)
		}
	case reflect.String:
		if strings.IndexByte(v.String(), 0) >= 0 {
			return path, true
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p, ok := nulIn(v.Index(i), path+"["+strconv.Itoa(i)+"]"); ok {
				return p, true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if strings.IndexByte(it.Key().String(), 0) >= 0 {
				return path, true // the object whose member is named so
			}
			if p, ok := nulIn(it.Value(), member(path, it.Key().String())); ok {
				return p, true
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case f.Anonymous && name == "":
				// Embedded: its members are the outer object's.
				if p, ok := nulIn(v.Field(i), path); ok {
					return p, true
				}
				continue
			case name == "":
				name = f.Name
			}
			if p, ok := nulIn(v.Field(i), member(path, name)); ok {
				return p, true
			}
		}
	}
	return "", false
}

func member(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
