"""Lifecycle webhooks to customers: signed (Standard Webhooks), at-least-once, retried, dead-lettered, replayable."""
