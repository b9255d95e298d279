#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
// Kept for callers of the former entry point; `bin/ducc.js` is the command.
import './ducc.js';
