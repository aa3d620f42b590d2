// Package fileowner tells who owns a file, where files have POSIX owners:
// a pidfile or a renewal settings file another user wrote may name a
// process or a command for this user to act on, so their readers refuse
// files they do not own.
package fileowner
