-- The channel catalogue (FIUU.md §5). Amounts are minor units (sen). Most Malaysian channels need
-- at least RM 1.00; FPX B2C is capped at RM 30,000 per transaction, FPX B2B runs RM 2.00 – 1,000,000.
-- Idempotent: existing rows keep an operator's changes (enabled, limits).
INSERT INTO payment_methods (code, name, type, currencies, min_amount, max_amount, enabled, sort_order) VALUES
  ('credit',          'Credit / debit card',          'card',           '{MYR,USD,SGD}', 100,  NULL,       true,  10),
  ('fpx',             'FPX online banking (all banks)', 'online_banking', '{MYR}',       100,  3000000,    true,  20),
  ('FPX_MB2U',        'Maybank2u (FPX)',              'online_banking', '{MYR}',         100,  3000000,    true,  21),
  ('FPX_CIMBCLICKS',  'CIMB Clicks (FPX)',            'online_banking', '{MYR}',         100,  3000000,    true,  22),
  ('FPX_PBB',         'Public Bank (FPX)',            'online_banking', '{MYR}',         100,  3000000,    true,  23),
  ('FPX_HLB',         'Hong Leong Bank (FPX)',        'online_banking', '{MYR}',         100,  3000000,    true,  24),
  ('FPX_RHB',         'RHB Now (FPX)',                'online_banking', '{MYR}',         100,  3000000,    true,  25),
  ('FPX_AMB',         'AmOnline (FPX)',               'online_banking', '{MYR}',         100,  3000000,    true,  26),
  ('FPX_BIMB',        'Bank Islam (FPX)',             'online_banking', '{MYR}',         100,  3000000,    true,  27),
  ('FPX_B2B_MB2U',    'Maybank2e (FPX B2B)',          'online_banking', '{MYR}',         200,  100000000,  true,  30),
  ('FPX_B2B_CIMB',    'CIMB BizChannel (FPX B2B)',    'online_banking', '{MYR}',         200,  100000000,  true,  31),
  ('TNG-EWALLET',     'Touch ''n Go eWallet',         'ewallet',        '{MYR}',         100,  500000,     true,  40),
  ('BOOST',           'Boost',                        'ewallet',        '{MYR}',         100,  500000,     true,  41),
  ('GrabPay',         'GrabPay',                      'ewallet',        '{MYR}',         100,  500000,     true,  42),
  ('ShopeePay',       'ShopeePay',                    'ewallet',        '{MYR}',         100,  500000,     true,  43),
  ('MB2U_QRPay-Push', 'Maybank QRPay',                'ewallet',        '{MYR}',         100,  500000,     true,  44),
  ('RPP_DuitNowQR',   'DuitNow QR',                   'qr',             '{MYR}',         100,  500000,     true,  50),
  ('cash',            '7-Eleven cash',                'cash',           '{MYR}',         100,  150000,     true,  60),
  ('jompay',          'JomPAY',                       'cash',           '{MYR}',         100,  3000000,    true,  61),
  ('Atome',           'Atome (buy now, pay later)',   'bnpl',           '{MYR}',         100,  500000,     true,  70)
ON CONFLICT (code) DO NOTHING;
