-- The checksum algorithm a resumable upload's parts carry (chosen when it starts; its multipart upload is opened
-- with it and storage verifies each part against it). Sessions opened before this column were SHA256.
ALTER TABLE upload_sessions ADD COLUMN IF NOT EXISTS checksum_algorithm text NOT NULL DEFAULT 'SHA256'
    CHECK (checksum_algorithm IN ('SHA256', 'CRC32C'));
