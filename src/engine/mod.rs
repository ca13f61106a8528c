//! Native cluster transport (issue 5).
