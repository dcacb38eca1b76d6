//! Apply stage: the only code that talks to the kernel.
