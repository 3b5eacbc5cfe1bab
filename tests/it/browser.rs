//! report.html in a real headless Chromium.
