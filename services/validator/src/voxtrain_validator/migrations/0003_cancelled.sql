-- A job of a cancelled training is dropped ('cancelled': no verdict) until models asks for it again.
ALTER TABLE datasets DROP CONSTRAINT IF EXISTS datasets_status_check;
ALTER TABLE datasets ADD CONSTRAINT datasets_status_check
    CHECK (status IN ('pending', 'running', 'passed', 'failed', 'dead', 'cancelled'));
