//! Geometry and chip rules chosen when a flash is built.

use crate::error::OpenError;

/// Value a byte holds after an erase.
///
/// Real SPI NOR (every ESP32 flash chip) erases to `0xFF` and programming clears bits.
/// [`EraseValue::Zeros`] inverts the logic (erase to `0x00`, programming sets bits). No ESP32 part
/// behaves like that; runs with it exist to catch code that silently assumes `0xFF`
/// (MCUboot's simulator runs every test with both values for the same reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EraseValue {
    /// Erase to `0xFF`; programming moves bits 1 → 0 (`new = old & data`).
    #[default]
    Ones,
    /// Erase to `0x00`; programming moves bits 0 → 1 (`new = old | data`).
    Zeros,
}

impl EraseValue {
    /// The byte an erased cell reads as.
    pub const fn byte(self) -> u8 {
        match self {
            Self::Ones => 0xFF,
            Self::Zeros => 0x00,
        }
    }

    /// The bits of `data` that a program operation moves away from the erased state.
    pub(crate) const fn programmed_bits(self, data: u8) -> u8 {
        data ^ self.byte()
    }

    /// What a cell holding `old` reads after programming `data` into it: bits only move from
    /// erased to programmed.
    pub(crate) const fn program(self, old: u8, data: u8) -> u8 {
        match self {
            Self::Ones => old & data,
            Self::Zeros => old | data,
        }
    }
}

/// Whether programming a byte twice without an erase in between is caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WriteCheck {
    /// A program whose data byte differs from the erased value, aimed at a byte already
    /// programmed since its last erase, fails with
    /// [`Error::ProgramNotErased`](crate::Error::ProgramNotErased) and changes nothing. The one
    /// exception is the byte range of a torn program (see [`ByteState::Torn`](crate::ByteState)),
    /// which may be programmed once more so that a replay of the interrupted write succeeds.
    #[default]
    Strict,
    /// Plain NOR semantics: the program is applied bitwise (AND for `0xFF` flash) whatever the
    /// byte held. Models drivers that rely on re-programming (which real chips tolerate within
    /// limits); it hides double-write bugs, so use it only when that is the point.
    Lenient,
}

/// Runtime geometry and rules of a [`SimFlashBase`](crate::SimFlashBase).
///
/// The read, write and erase sizes are not here: `embedded-storage` makes them associated
/// constants, so they are const parameters of the flash type (`SimFlash` fixes ESP32's). What can
/// vary per instance is here. `Config::default()` is an ESP32 module's 4 MiB flash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Config {
    /// Flash size in bytes: a non-zero multiple of the erase size, at most `u32::MAX`.
    pub capacity: usize,
    /// Program page in bytes: one `write()` is split at multiples of this, and each piece is one
    /// program operation. Must be a multiple of the write size and divide the erase size.
    pub page_size: usize,
    /// What an erased byte reads as.
    pub erase_value: EraseValue,
    /// Whether double programming is an error.
    pub write_check: WriteCheck,
}

impl Config {
    /// ESP32 module flash: 4 MiB, 256-byte program pages, erased to `0xFF`, strict.
    pub const ESP32: Self = Self {
        capacity: 4 * 1024 * 1024,
        page_size: 256,
        erase_value: EraseValue::Ones,
        write_check: WriteCheck::Strict,
    };

    /// This config with another capacity.
    #[must_use]
    pub const fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// This config with another program page size.
    #[must_use]
    pub const fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// This config with another erased value.
    #[must_use]
    pub const fn with_erase_value(mut self, erase_value: EraseValue) -> Self {
        self.erase_value = erase_value;
        self
    }

    /// This config with another double-program rule.
    #[must_use]
    pub const fn with_write_check(mut self, write_check: WriteCheck) -> Self {
        self.write_check = write_check;
        self
    }

    /// Checks this config against the type's write and erase sizes.
    pub(crate) fn validate(&self, write_size: usize, erase_size: usize) -> Result<(), OpenError> {
        let fail = |reason: String| Err(OpenError::InvalidGeometry { reason });
        if write_size == 0 || erase_size == 0 || !erase_size.is_multiple_of(write_size) {
            return fail(format!(
                "erase size {erase_size} must be a non-zero multiple of write size {write_size}"
            ));
        }
        if self.capacity == 0 || !self.capacity.is_multiple_of(erase_size) {
            return fail(format!(
                "capacity {} must be a non-zero multiple of the erase size {erase_size}",
                self.capacity
            ));
        }
        if u32::try_from(self.capacity).is_err() {
            return fail(format!(
                "capacity {} does not fit 32-bit flash addresses",
                self.capacity
            ));
        }
        if self.page_size == 0
            || !self.page_size.is_multiple_of(write_size)
            || !erase_size.is_multiple_of(self.page_size)
        {
            return fail(format!(
                "page size {} must be a multiple of write size {write_size} and divide erase size {erase_size}",
                self.page_size
            ));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::ESP32
    }
}
